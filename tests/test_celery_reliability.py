"""Reliability on the distributed stack: real Celery workers, a real Redis broker, PostgreSQL.

Each test starts its own redis-server (so it can restart it), a fresh PostgreSQL database, an
OpenAI-compatible stub teacher, and `curation worker` processes; then it breaks something:
kill -9 a worker mid-run, restart Redis (which keeps nothing on disk) mid-run, deliver a task
twice, or have the teacher answer 500, 429, garbage or nothing. The run must still complete with
exactly one generation per (problem, sample), every program executed and every rationale labelled.

Some tests watch the run from the test (`wait_distributed`, what `curation synth` does); the
`_without_a_driver` ones only send the work (`curation synth --no-wait`) and leave recovery to a
`curation supervise` process, or to the broker's own redelivery, while the test only reads the
database.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlalchemy import text

from curation.db import migrations
from curation.db.session import Database
from curation.ingestion.service import ingest_procedural
from curation.models import RunStatus
from curation.settings import Settings
from tests.conftest import ROOT, PostgresFactory, unavailable
from tests.support.redis_server import RedisServer
from tests.support.stub_server import Fault, Rule, StubServer, program_reply
from workers.broker_messages import BrokerMessage, read_messages
from workers.celery_app import celery_config
from workers.dispatch import CeleryDispatcher
from workers.driver import progress_of, wait_distributed
from workers.queues import Queue
from workers.sandbox import Limits
from workers.synthesis import GENERATE, RunSpec, create_run, start_run
from workers.tasks import ROUTES
from workers.teachers.spec import TeacherSpec

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        unavailable("Redis", "redis-server is not installed")
    server = RedisServer(binary, tmp_path)
    server.start()
    yield server
    server.stop()


@dataclass
class Stack:
    db: Database
    database_url: str
    broker: RedisServer
    app: Celery
    workers: list[subprocess.Popen[bytes]]
    log_dir: Path
    time_limit: int = 60
    visibility_timeout: int = 90

    @property
    def dispatcher(self) -> CeleryDispatcher:
        return CeleryDispatcher(self.app, ROUTES)

    def environment(self, name: str) -> dict[str, str]:
        return {
            **os.environ,
            "CURATION_DATABASE_URL": self.database_url,
            "CURATION_BROKER_URL": self.broker.url,
            "CURATION_TASK_TIME_LIMIT": str(self.time_limit),
            "CURATION_VISIBILITY_TIMEOUT": str(self.visibility_timeout),
            "CURATION_LEASE_SECONDS": "10",
            "CURATION_WORKER_ID": name,
        }

    def _start(self, name: str, arguments: list[str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "curation", *arguments],
            cwd=ROOT, env=self.environment(name), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.workers.append(process)
        return process

    def start_worker(self, name: str, concurrency: int = 2) -> subprocess.Popen[bytes]:
        return self._start(name, ["worker", "--concurrency", str(concurrency), "--loglevel", "info"])

    def start_supervisor(self, *, stall_seconds: float = 3, max_stalls: int = 3) -> subprocess.Popen[bytes]:
        """`curation supervise` as a deployment runs it, with short clocks for a test; but a loaded
        machine's worker gets 5 s to answer the inspect (not 1 s), so a live one never looks dead."""
        return self._start(
            "supervisor",
            ["supervise", "--interval", "0.5", "--stall-seconds", str(stall_seconds), "--max-stalls", str(max_stalls),
             "--inspect-timeout", "5"],
        )  # fmt: skip

    def kill(self, worker: subprocess.Popen[bytes]) -> None:
        os.killpg(worker.pid, signal.SIGKILL)  # the main process and its pool, all at once
        worker.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.log_dir.glob("*.log"))


@pytest.fixture
def stack(broker: RedisServer, postgres_factory: PostgresFactory, tmp_path: Path) -> Iterator[Stack]:
    url = postgres_factory.create("celery")
    db = Database(url)
    migrations.upgrade(db)
    app = Celery("curation-test")
    app.conf.update(
        celery_config(Settings(broker_url=broker.url, database_url=url, task_time_limit=60, visibility_timeout=90))
    )
    result = Stack(db, url, broker, app, [], tmp_path)
    yield result
    for worker in result.workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
    db.dispose()


def _slow(reply: Callable[[str, int], str], seconds: float) -> Callable[[str, int], str]:
    def slowed(prompt: str, index: int) -> str:
        time.sleep(seconds)  # a teacher that takes its time: the run lasts long enough to break
        return reply(prompt, index)

    return slowed


def _run(
    stack: Stack, teacher: StubServer, *, problems: int, samples: int = 2, batch_size: int = 4, seed: int = 21,
    offset: int = 0, request_timeout: float = 30,
) -> int:  # fmt: skip
    """request_timeout: long, so a slow answer on a loaded machine is waited for, not asked again
    (the tests count the teacher's calls); only a test with a hanging teacher needs it short."""
    with stack.db.transaction() as session:
        ingest_procedural(session, count=problems, seed=seed)
        run = create_run(
            session,
            RunSpec(
                task="procedural", template="pad-program", samples=samples, temperature=0.7, batch_size=batch_size,
                limits=Limits(wall_seconds=2.0), offset=offset,
                teacher=TeacherSpec("openai", "stub", {"base_url": teacher.url, "concurrency": 2,
                                                        "request_timeout": request_timeout, "max_attempts": 5,
                                                        "backoff_base": 0.05, "backoff_max": 0.5}),
            ),
        )  # fmt: skip
        return run.id


def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.1)


def _assert_complete(stack: Stack, run_id: int, expected: int) -> None:
    with stack.db.read() as session:
        keys = session.execute(text("SELECT problem_id, sample_index FROM generation")).all()
        counts = session.execute(
            text(
                "SELECT (SELECT COUNT(*) FROM rationale), (SELECT COUNT(*) FROM execution), "
                "(SELECT COUNT(*) FROM label), (SELECT COUNT(DISTINCT rationale_id) FROM execution), "
                "(SELECT COUNT(DISTINCT rationale_id) FROM label)"
            )
        ).one()
    assert len(keys) == len(set(keys)) == expected, "exactly one generation per (problem, sample)"
    assert tuple(counts) == (expected,) * 5, "every program executed once, every rationale labelled once"
    progress = progress_of(stack.db, run_id)
    assert (progress.status, progress.generated, progress.labelled) == (RunStatus.completed, expected, expected)


def test_kill_dash_nine_a_worker_mid_run(stack: Stack) -> None:
    # The stub answers one request at a time, 0.15 s per sample (n = 2): 0.3 s a call. After 16
    # generations 32 calls remain, 9.6 s at least, so the kill comes mid-run on a loaded machine too.
    with StubServer(_slow(program_reply, 0.15)) as teacher:
        run_id = _run(stack, teacher, problems=40)
        first = stack.start_worker("first")
        start_run(stack.db, stack.dispatcher, run_id)
        _wait_for(lambda: progress_of(stack.db, run_id).generated >= 16)
        stack.kill(first)
        stored_at_kill = progress_of(stack.db, run_id).generated
        assert stored_at_kill < 80, "the run was over before the kill"
        stack.start_worker("second")
        final = wait_distributed(stack.db, stack.dispatcher, run_id, poll_seconds=0.5, stall_seconds=8, timeout=180)
        calls = teacher.generations
    assert final.status is RunStatus.completed, stack.logs()
    _assert_complete(stack, run_id, 80)
    # n is honoured: one call per problem. Only calls in flight at the kill may be repeated
    # (two worker processes, two connections each).
    assert 40 <= calls <= 40 + 4


def test_redis_restart_mid_run(stack: Stack) -> None:
    with StubServer(_slow(program_reply, 0.05)) as teacher:
        run_id = _run(stack, teacher, problems=40)
        stack.start_worker("survivor")
        start_run(stack.db, stack.dispatcher, run_id)
        _wait_for(lambda: progress_of(stack.db, run_id).generated >= 16)
        stack.broker.stop()  # its queues are lost: it keeps nothing on disk
        time.sleep(2)
        stack.broker.start()
        final = wait_distributed(stack.db, stack.dispatcher, run_id, poll_seconds=0.5, stall_seconds=8, timeout=180)
    assert final.status is RunStatus.completed, stack.logs()
    _assert_complete(stack, run_id, 80)


def test_the_same_task_delivered_twice(stack: Stack) -> None:
    with StubServer(program_reply) as teacher:
        run_id = _run(stack, teacher, problems=8, batch_size=8)
        with stack.db.read() as session:
            problem_ids = list(session.execute(text("SELECT id FROM problem ORDER BY id")).scalars())
        with stack.db.transaction() as session:
            session.execute(text("UPDATE synthesis_run SET status = 'running'"))
        stack.dispatcher.send(GENERATE, run_id, problem_ids, False)
        stack.dispatcher.send(GENERATE, run_id, problem_ids, False)  # the broker's at-least-once
        stack.start_worker("single", concurrency=1)
        final = wait_distributed(stack.db, stack.dispatcher, run_id, poll_seconds=0.3, stall_seconds=30, timeout=120)
        calls = teacher.generations
    assert final.status is RunStatus.completed, stack.logs()
    _assert_complete(stack, run_id, 16)
    assert calls == 8, "the second delivery asked the teacher for nothing"


def test_the_same_task_delivered_twice_at_once(stack: Stack) -> None:
    """Both deliveries run at the same time on two worker processes: the second finds the batch
    claimed, retries when the claim would run out, and then has nothing to ask for."""
    with StubServer(_slow(program_reply, 0.3)) as teacher:
        run_id = _run(stack, teacher, problems=8, batch_size=8)
        with stack.db.read() as session:
            problem_ids = list(session.execute(text("SELECT id FROM problem ORDER BY id")).scalars())
        with stack.db.transaction() as session:
            session.execute(text("UPDATE synthesis_run SET status = 'running'"))
        stack.start_worker("pair", concurrency=2)
        stack.dispatcher.send(GENERATE, run_id, problem_ids, False)
        stack.dispatcher.send(GENERATE, run_id, problem_ids, False)
        final = wait_distributed(stack.db, stack.dispatcher, run_id, poll_seconds=0.3, stall_seconds=30, timeout=120)
        calls = teacher.generations
    assert final.status is RunStatus.completed, stack.logs()
    _assert_complete(stack, run_id, 16)
    assert calls == 8, "the concurrent delivery asked the teacher for nothing"
    assert "curation.generate" in stack.logs() and "retry: Retry in" in stack.logs(), stack.logs()


def test_a_misbehaving_teacher(stack: Stack) -> None:
    faults = [
        Rule(Fault.server_error, times=3),
        Rule(Fault.rate_limited, times=2),
        Rule(Fault.invalid_json, times=2),
        Rule(Fault.missing_choices, times=1),
        Rule(Fault.disconnect, times=1),
        Rule(Fault.hang, times=1),
    ]
    with stack.db.transaction() as session:
        ingest_procedural(session, count=12, seed=21)
        doomed = session.execute(text("SELECT question FROM problem ORDER BY id LIMIT 1")).scalar_one()
    faults.insert(0, Rule(Fault.server_error, prompt_contains=doomed))  # this one never gets through
    with StubServer(program_reply, faults=faults, retry_after=0.05) as teacher:
        run_id = _run(stack, teacher, problems=12, request_timeout=5)  # the hang ends with it
        stack.start_worker("patient")
        start_run(stack.db, stack.dispatcher, run_id)
        final = wait_distributed(stack.db, stack.dispatcher, run_id, poll_seconds=0.5, stall_seconds=30, timeout=180)
    assert final.status is RunStatus.completed, stack.logs()
    assert (final.generated, final.failed, final.labelled) == (22, 2, 22)
    with stack.db.read() as session:
        failures = session.execute(text("SELECT error, attempts FROM generation WHERE status = 'failed'")).all()
    assert [tuple(f) for f in failures] == [("HTTP 500", 5)] * 2


# --- No driver: the supervisor, or the broker's own redelivery -----------------------------------------


def _wait_until_ended(stack: Stack, run_id: int, timeout: float = 180.0) -> RunStatus:
    """Only reads the database, as an operator's `curation runs show` would."""
    _wait_for(lambda: progress_of(stack.db, run_id).status in (RunStatus.completed, RunStatus.cancelled), timeout)
    return progress_of(stack.db, run_id).status


def _messages_of(stack: Stack, run_id: int) -> list[BrokerMessage]:
    client = redis.Redis.from_url(stack.broker.url)
    try:
        return [m for m in read_messages(client, [q.value for q in Queue]) if m.run_id == run_id]
    finally:
        client.close()


def test_a_killed_workers_task_is_redelivered_by_the_broker_without_a_driver(stack: Stack) -> None:
    """No supervisor and no resend: the killed worker's unacknowledged message comes back from the
    broker once the visibility timeout passes, and another worker finishes the batch."""
    # One request at a time, 0.5 s per sample (n = 2): 1 s a call. After 2 generations (1 call) 7
    # remain: 7 s for the kill to land, and the heir's at most 8 s fit well in its 20 s time limit.
    stack.time_limit, stack.visibility_timeout = 20, 24
    with StubServer(_slow(program_reply, 0.5)) as teacher:
        run_id = _run(stack, teacher, problems=8, batch_size=8)  # one batch: its one message is the one lost
        doomed = stack.start_worker("doomed", concurrency=1)
        start_run(stack.db, stack.dispatcher, run_id)
        _wait_for(lambda: progress_of(stack.db, run_id).generated >= 2)
        stack.kill(doomed)
        at_kill = progress_of(stack.db, run_id)
        assert at_kill.generated < 16, "the batch was over before the kill"
        (lost,) = [m for m in _messages_of(stack, run_id) if m.task == GENERATE]
        assert lost.delivered_at is not None, "the killed worker's message waits, unacknowledged"
        stack.start_worker("heir", concurrency=1)
        status = _wait_until_ended(stack, run_id, timeout=120)
        calls = teacher.generations
    assert status is RunStatus.completed, stack.logs()
    _assert_complete(stack, run_id, 16)
    heir = (stack.log_dir / "heir.log").read_text(errors="replace")
    assert f"{GENERATE}[{lost.task_id}] received" in heir, "the heir ran the very message the killed worker held"
    assert 8 <= calls <= 8 + 2, "only the calls in flight at the kill were asked again"


def test_a_worker_killed_mid_run_without_a_driver(stack: Stack) -> None:
    with StubServer(_slow(program_reply, 0.15)) as teacher:  # as above: the kill comes mid-run
        run_id = _run(stack, teacher, problems=40)
        stack.start_supervisor()
        first = stack.start_worker("first")
        start_run(stack.db, stack.dispatcher, run_id)  # `curation synth --no-wait`: nothing watches here
        _wait_for(lambda: progress_of(stack.db, run_id).generated >= 16)
        stack.kill(first)
        assert progress_of(stack.db, run_id).generated < 80, "the run was over before the kill"
        stack.start_worker("second")
        status = _wait_until_ended(stack, run_id)
        calls = teacher.generations
    assert status is RunStatus.completed, stack.logs()
    _assert_complete(stack, run_id, 80)
    assert 40 <= calls <= 40 + 4


def test_a_redis_restart_mid_run_without_a_driver(stack: Stack) -> None:
    with StubServer(_slow(program_reply, 0.05)) as teacher:
        run_id = _run(stack, teacher, problems=40)
        stack.start_supervisor()
        stack.start_worker("survivor")
        start_run(stack.db, stack.dispatcher, run_id)
        _wait_for(lambda: progress_of(stack.db, run_id).generated >= 16)
        stack.broker.stop()  # its queues are lost: it keeps nothing on disk
        time.sleep(2)
        stack.broker.start()
        status = _wait_until_ended(stack, run_id)
    assert status is RunStatus.completed, stack.logs()
    _assert_complete(stack, run_id, 80)
    assert "resent" in stack.logs(), stack.logs()


def test_a_run_queued_behind_a_big_one_is_left_alone(stack: Stack) -> None:
    """Its messages wait in the queue far longer than the supervisor's stall time: the run is not
    failed, and nothing of it is sent again (its 2 generation messages stay 2)."""
    with StubServer(_slow(program_reply, 0.1)) as teacher:
        big = _run(stack, teacher, problems=48)
        small = _run(stack, teacher, problems=8, seed=22, offset=48)  # problems 49-56, 2 batches
        stack.start_supervisor(stall_seconds=1, max_stalls=2)
        start_run(stack.db, stack.dispatcher, big)
        start_run(stack.db, stack.dispatcher, small)
        stack.start_worker("only", concurrency=1)
        seen: list[int] = []
        started = time.monotonic()
        while progress_of(stack.db, small).generated == 0:
            seen.append(sum(1 for m in _messages_of(stack, small) if m.task == GENERATE))
            assert progress_of(stack.db, small).status is RunStatus.running, stack.logs()
            time.sleep(0.3)
        waited = time.monotonic() - started
        assert _wait_until_ended(stack, small) is RunStatus.completed, stack.logs()
        assert _wait_until_ended(stack, big) is RunStatus.completed, stack.logs()
    assert waited > 1 * 2 + 1, f"the small run waited only {waited:.1f} s: the test proves nothing"
    assert max(seen) == 2, seen
    assert f"run #{small} queued" in stack.logs(), stack.logs()
    with stack.db.read() as session:
        keys = session.execute(text("SELECT problem_id, sample_index FROM generation")).all()
    assert len(keys) == len(set(keys)) == (48 + 8) * 2


def test_a_run_nobody_works_on_is_failed_and_completes_when_a_worker_comes(stack: Stack) -> None:
    with StubServer(program_reply) as teacher:
        run_id = _run(stack, teacher, problems=8)
        stack.start_supervisor(stall_seconds=1, max_stalls=2)
        start_run(stack.db, stack.dispatcher, run_id)
        _wait_for(lambda: progress_of(stack.db, run_id).status is RunStatus.failed, timeout=60)
        with stack.db.read() as session:
            error = session.execute(text("SELECT error FROM synthesis_run WHERE id = :id"), {"id": run_id}).scalar()
        assert "are workers consuming generation?" in (error or ""), error
        assert len(_messages_of(stack, run_id)) == 2, "its 2 messages wait, not resent"
        stack.start_worker("late")
        status = _wait_until_ended(stack, run_id, timeout=120)
    assert status is RunStatus.completed, stack.logs()
    _assert_complete(stack, run_id, 16)
