"""How runs end and how their tasks hold on: the lease renewed whatever else fails, the teacher
call cancelled when storing fails, a run whose every call failed failed with the reason, a run
failed for stalling completed once its work is done. (The supervisor itself, with real workers,
Redis and PostgreSQL: tests/test_celery_reliability.py.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from curation.db.session import Database
from curation.ingestion.service import ingest_procedural
from curation.models import RunStatus, SynthesisRun
from curation.repositories import leases
from curation.repositories.runs import fail_run
from curation.settings import Settings
from tests.support.scripted_teacher import TeacherCrash
from workers import synthesis
from workers.batch_lease import Lease
from workers.celery_app import TRANSIENT, celery_config
from workers.dispatch import InlineDispatcher
from workers.driver import progress_of, run_embedded
from workers.runtime import Runtime
from workers.synthesis import RunSpec, create_run, generate_batch, start_run
from workers.tasks import TASKS
from workers.teachers.base import Completion, GenerationRequest, GenerationResult, SamplingParams
from workers.teachers.spec import TeacherSpec


def _setup(db: Database, *, problems: int = 8, batch_size: int = 8) -> tuple[int, list[int]]:
    with db.transaction() as session:
        ingest_procedural(session, count=problems, seed=5)
        run = create_run(
            session,
            RunSpec(task="procedural", teacher=TeacherSpec("scripted", "t"), template="pad-program", samples=1,
                    batch_size=batch_size),
        )  # fmt: skip
        ids = list(session.execute(text("SELECT id FROM problem ORDER BY id")).scalars())
    return run.id, ids


class PacedTeacher:
    """Answers one request every `pace` seconds; stops when cancelled, unless told to ignore it."""

    def __init__(self, pace: float, *, honour_cancel: bool = True, fail: bool = False) -> None:
        self.pace, self.honour_cancel, self.fail = pace, honour_cancel, fail
        self.answered = 0

    def generate(
        self, requests: Sequence[GenerationRequest], params: SamplingParams, cancel: threading.Event | None = None
    ) -> Iterator[GenerationResult]:
        for request in requests:
            if self.honour_cancel and cancel is not None and cancel.is_set():
                return
            time.sleep(self.pace)
            self.answered += 1
            if self.fail:
                yield GenerationResult(request, error="connection failed: ClientConnectorError", attempts=5)
            else:
                yield GenerationResult(request, [Completion("def solution():\n    return 1\n", "stop")])

    def close(self) -> None:
        pass


def _runtime(db: Database, teacher: Any) -> Runtime:
    return Runtime(db, InlineDispatcher(TASKS), teacher_factory=lambda model, options: teacher)


def test_the_lease_is_renewed_in_its_own_loop_through_database_errors(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, ids = _setup(db)
    # Long enough that three failed renewals (every tick of seconds/8 after the first due at
    # seconds/4) leave time for a good one even on a loaded machine.
    lease = Lease(db, run_id, ids, seconds=6.0)
    lease.acquire()
    real_renew, failures = leases.renew, {"left": 3}

    def flaky(session: Any, *args: Any) -> bool:
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("UPDATE batch_lease", {}, Exception("server closed the connection"))
        return real_renew(session, *args)

    monkeypatch.setattr(leases, "renew", flaky)
    lost = threading.Event()
    with lease.kept(on_lost=lost.set):
        time.sleep(7.0)  # longer than the lease: only renewals keep it
        with db.read() as session:
            holder = leases.live_batches(session, run_id).get(lease.key)
    assert failures["left"] == 0, "the renewals that failed were tried again"
    assert holder == lease.holder and not lease.lost and not lost.is_set()
    lease.release()


def test_a_lease_that_ran_out_unrenewed_is_lost_and_says_so(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id, ids = _setup(db)
    lease = Lease(db, run_id, ids, seconds=2.0)
    lease.acquire()

    def down(session: Any, *args: Any) -> bool:
        raise OperationalError("UPDATE batch_lease", {}, Exception("connection refused"))

    monkeypatch.setattr(leases, "renew", down)
    lost = threading.Event()
    with lease.kept(on_lost=lost.set):
        assert lost.wait(10)
    assert lease.lost


def test_when_storing_fails_the_teacher_call_is_cancelled(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id, ids = _setup(db, problems=40, batch_size=40)
    start_run(db, InlineDispatcher(TASKS), run_id)

    def broken(self: Any, first: Any, answers: Any) -> None:
        raise OperationalError("INSERT INTO generation", {}, Exception("the database went away"))

    monkeypatch.setattr(synthesis._Sink, "_write", broken)
    teacher = PacedTeacher(0.25)  # all 40 would take 10 s
    runtime = _runtime(db, teacher)
    with pytest.raises(OperationalError):
        generate_batch(runtime, run_id, ids)
    runtime.close()
    # The first background flush (after 0.25 s, about one answer) fails; the call stops there
    # instead of asking all 40. Counted, not timed: under 20 leaves a loaded machine 4 s to stop it.
    assert teacher.answered < 20, teacher.answered


def test_a_run_whose_every_teacher_call_failed_is_failed_with_the_reason(db: Database) -> None:
    run_id, _ = _setup(db, problems=4, batch_size=2)
    final = run_embedded(db, run_id, teacher_factory=lambda model, options: PacedTeacher(0, fail=True))
    assert (final.status, final.generated, final.failed) == (RunStatus.failed, 0, 4)
    with db.read() as session:
        error = session.get(SynthesisRun, run_id).error  # type: ignore[union-attr]
    assert error == (
        "every sample failed (no teacher call gave an answer); "
        "the first error: connection failed: ClientConnectorError"
    )


def test_a_run_failed_for_stalling_completes_when_its_work_does(db: Database) -> None:
    run_id, _ = _setup(db, problems=4, batch_size=4)
    runtime = _runtime(db, PacedTeacher(0))
    dispatcher = runtime.dispatcher
    assert isinstance(dispatcher, InlineDispatcher)
    start_run(db, dispatcher, run_id)
    with db.transaction() as session:  # what the supervisor does when nothing moves
        fail_run(session, run_id, "no progress after its missing work was sent again 5 times")
    assert dispatcher.drain(runtime) == 2  # the queued work arrives after all: generation, then execution
    runtime.close()
    final = progress_of(db, run_id)
    assert (final.status, final.generated, final.labelled) == (RunStatus.completed, 4, 4)
    with db.read() as session:
        assert session.get(SynthesisRun, run_id).error is None  # type: ignore[union-attr]


@pytest.mark.parametrize(("limit", "soft"), [(10, 9), (59, 54), (60, 54), (600, 540), (3600, 3540), (7200, 7140)])
def test_the_soft_time_limit_is_always_before_the_hard_one_and_positive(limit: int, soft: int) -> None:
    settings = Settings(task_time_limit=limit, broker_url="redis://127.0.0.1:1/0")
    config = celery_config(settings)
    assert (config["task_time_limit"], config["task_soft_time_limit"]) == (limit, soft)
    with pytest.raises(ValueError):
        Settings(task_time_limit=9)


def test_broker_errors_are_transient() -> None:
    import kombu.exceptions
    import redis

    for error in (kombu.exceptions.OperationalError("down"), redis.ConnectionError("down"), redis.TimeoutError()):
        assert isinstance(error, TRANSIENT), type(error)
        assert not isinstance(error, ConnectionError)  # why each is named in the list


def test_a_redelivered_batch_sends_the_follow_ups_its_dead_first_delivery_never_sent(db: Database) -> None:
    """The first delivery stores some answers and dies before sending their follow-ups (a kill
    between commit and send); the redelivery stores the rest and sends the lost follow-ups too, so
    the broker's redelivery alone finishes the batch."""
    run_id, ids = _setup(db, problems=6, batch_size=6)

    class Dies(PacedTeacher):
        def generate(self, *args: Any, **kwargs: Any) -> Iterator[GenerationResult]:
            for count, result in enumerate(super().generate(*args, **kwargs)):
                if count == 3:
                    raise TeacherCrash("killed")
                yield result

    class LosesFollowUps(InlineDispatcher):
        losing = True

        def send(self, task: str, *args: Any) -> None:
            if not (self.losing and task != synthesis.GENERATE):
                super().send(task, *args)

    dispatcher = LosesFollowUps(TASKS)
    first = Runtime(db, dispatcher, teacher_factory=lambda model, options: Dies(0))
    start_run(db, dispatcher, run_id)
    with pytest.raises(TeacherCrash):
        dispatcher.drain(first)
    first.close()
    assert progress_of(db, run_id).generated == 3
    dispatcher.losing = False
    dispatcher.send(synthesis.GENERATE, run_id, ids, False)  # the broker delivers the message again
    second = Runtime(db, dispatcher, teacher_factory=lambda model, options: PacedTeacher(0))
    dispatcher.drain(second)
    second.close()
    final = progress_of(db, run_id)
    assert (final.status, final.generated, final.labelled) == (RunStatus.completed, 6, 6)
