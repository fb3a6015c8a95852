"""One trainer per training run: the claim is atomic on both databases, a second execution of a
run that another process trains trains nothing and says who holds it, a run whose holder stopped
renewing is taken over and resumed from its checkpoint, a trainer whose lease was taken stops
without writing, and the Celery task (a real worker on Redis) completes a run delivered twice at
once with one trainer."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import func, select, update

from curation.db.base import utc_now
from curation.db.session import Database
from curation.errors import CurationError
from curation.models import LanguageModel, TrainingRun, TrainingStatus
from curation.repositories import training_leases
from tests.conftest import ROOT, fresh_sqlite, unavailable
from tests.support.redis_server import RedisServer
from tests.support.training_data import reference_snapshot
from trainer import fit as fit_module
from trainer import runs as runs_module
from trainer.config import TrainConfig
from trainer.lease import RunHeld, TrainingLease
from trainer.runs import create_training_run, execute_training_run
from trainer.tasks import TRAIN
from workers.queues import Queue


def _config(**overrides: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "max_steps": 6, "batch_size": 4, "learning_rate": 1e-3, "save_steps": 3, "validation_fraction": 0.0,
    }  # fmt: skip
    values.update(overrides)
    return TrainConfig(**values)


def _run(db: Database, base: Path, root: Path, **overrides: Any) -> int:
    ref = reference_snapshot(db, test=0)
    with db.transaction() as session:
        return create_training_run(session, ref, str(base), _config(**overrides), output_root=root).id


def _row(db: Database, run_id: int) -> TrainingRun:
    with db.read() as session:
        row = session.get(TrainingRun, run_id)
        assert row is not None
        session.expunge(row)
        return row


def _student_models(db: Database) -> int:
    with db.read() as session:
        return int(
            session.execute(
                select(func.count()).select_from(LanguageModel).where(LanguageModel.name.like("%/model"))
            ).scalar_one()
        )


def test_a_claim_is_taken_by_exactly_one_of_many_at_once(db: Database, tiny_student: Path, tmp_path: Path) -> None:
    run_id = _run(db, tiny_student, tmp_path)
    start, results = threading.Barrier(6), []

    def claim(index: int) -> None:
        start.wait()
        with db.transaction() as session:
            results.append(training_leases.claim(session, run_id, f"holder-{index}", 60))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    with db.transaction() as session:
        holder = _row(db, run_id).lease_holder
        assert holder is not None and training_leases.claim(session, run_id, holder, 60)  # its own: renewed
        assert training_leases.release(session, run_id, holder)
        assert training_leases.claim(session, run_id, "holder-9", 60)  # released: free again


def _paused_fit(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """fit() waits, once it is called, until the test lets it go: the run is claimed and held meanwhile."""
    real, entered, go = fit_module.fit, threading.Event(), threading.Event()

    def paused(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert go.wait(120)
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module, "fit", paused)
    return entered, go


@pytest.mark.slow
def test_a_second_execution_of_a_run_in_training_trains_nothing(
    db: Database, tiny_student: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _run(db, tiny_student, tmp_path)
    entered, go = _paused_fit(monkeypatch)
    outcome: list[Any] = []
    first = threading.Thread(target=lambda: outcome.append(execute_training_run(db, run_id, progress=False)))
    first.start()
    assert entered.wait(120)
    held = _row(db, run_id)
    assert held.status is TrainingStatus.running and held.lease_holder
    with pytest.raises(RunHeld, match=f"training run {run_id} is held by {held.lease_holder}") as raised:
        execute_training_run(db, run_id, progress=False)
    assert 1 <= raised.value.retry_in <= 60
    after = _row(db, run_id)
    assert (after.status, after.lease_holder, after.error) == (TrainingStatus.running, held.lease_holder, None)
    go.set()
    first.join(300)
    assert outcome and outcome[0].status is TrainingStatus.completed
    done = _row(db, run_id)
    assert done.lease_holder is None and done.lease_expires_at is None and done.metrics is not None
    assert done.metrics["resumed_from"] is None and _student_models(db) == 1
    assert execute_training_run(db, run_id, progress=False).metrics == done.metrics  # completed: left alone


class _Crash(Exception):
    pass


def _crash_at(step: int) -> Callable[..., Any]:
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == step:
                raise _Crash(f"crashed at step {step}")

    return Crash


@pytest.mark.slow
def test_a_run_whose_holder_stopped_renewing_is_taken_over_and_resumed(
    db: Database, tiny_student: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _run(db, tiny_student, tmp_path)
    real = fit_module.fit
    crash = _crash_at(4)

    def crashing(*args: Any, **kwargs: Any) -> Any:
        return real(*args, **{**kwargs, "callbacks": [*kwargs["callbacks"], crash()]})

    monkeypatch.setattr(fit_module, "fit", crashing)
    with pytest.raises(_Crash):
        execute_training_run(db, run_id, progress=False)
    # What a worker killed at step 4 leaves: the run running, held by a process on another
    # machine whose lease ran out, checkpoint-3 on disk.
    with db.transaction() as session:
        session.execute(
            update(TrainingRun)
            .where(TrainingRun.id == run_id)
            .values(status=TrainingStatus.running, error=None, lease_holder="gone-host~x~y/4242/abc",
                    lease_expires_at=utc_now() + timedelta(seconds=30))
        )  # fmt: skip
    monkeypatch.setattr(fit_module, "fit", real)
    with pytest.raises(RunHeld, match="held by gone-host"):
        execute_training_run(db, run_id, progress=False)  # still live: left alone
    with db.transaction() as session:
        session.execute(
            update(TrainingRun)
            .where(TrainingRun.id == run_id)
            .values(lease_expires_at=utc_now() - timedelta(seconds=1))
        )
    run = execute_training_run(db, run_id, progress=False)
    assert run.status is TrainingStatus.completed and run.metrics is not None
    assert str(run.metrics["resumed_from"]).endswith("checkpoint-3")
    assert [step for step, _ in run.metrics["train_loss"]] == list(range(1, 7))
    assert run.lease_holder is None and _student_models(db) == 1


@pytest.mark.slow
def test_a_trainer_whose_lease_was_taken_stops_without_writing(
    db: Database, tiny_student: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _run(db, tiny_student, tmp_path, max_steps=50)
    real = fit_module.fit
    leases: list[TrainingLease] = []

    class Recorded(TrainingLease):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            leases.append(self)

    def robbed(*args: Any, **kwargs: Any) -> Any:
        with db.transaction() as session:  # another process takes the run (it thought this one dead)
            session.execute(update(TrainingRun).where(TrainingRun.id == run_id).values(lease_holder="thief/1/x"))
        # The lease's thread notices at its next renewal (every half second here); waited for, as
        # a loaded machine may run that thread late, so training starts with the lease known lost.
        deadline = time.monotonic() + 60
        while not leases[0].lost:
            assert time.monotonic() < deadline, "the lease's thread never noticed"
            time.sleep(0.05)
        return real(*args, **kwargs)

    monkeypatch.setattr(runs_module, "TrainingLease", Recorded)
    monkeypatch.setattr(fit_module, "fit", robbed)
    with pytest.raises(RunHeld, match="taken over"):
        execute_training_run(db, run_id, progress=False, lease_seconds=2)
    row = _row(db, run_id)
    assert (row.status, row.lease_holder, row.error, row.output_model_id) == (
        TrainingStatus.running, "thief/1/x", None, None
    )  # fmt: skip
    folder = next((tmp_path).glob(f"run-{run_id}-*"))
    assert not (folder / "model").exists() and not list((folder / "checkpoints").glob("checkpoint-*"))


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.timeout(900)
def test_a_celery_worker_trains_a_run_delivered_twice_at_once_with_one_trainer(
    sqlite_template: Path, tiny_student: Path, tmp_path: Path
) -> None:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        unavailable("Redis", "redis-server is not installed")
    server = RedisServer(binary, tmp_path)
    server.start()
    broker_url = server.url
    db = fresh_sqlite(sqlite_template, tmp_path)
    run_id = _run(db, tiny_student, tmp_path / "runs")
    log_path = tmp_path / "worker.log"
    environment = {
        **os.environ, "CURATION_DATABASE_URL": str(db.engine.url), "CURATION_BROKER_URL": broker_url,
        "CURATION_LEASE_SECONDS": "3", "CURATION_DATA_DIR": str(tmp_path / "data"), "OMP_NUM_THREADS": "1",
    }  # fmt: skip
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "curation", "worker", "--queues", "training", "--concurrency", "2",
             "--loglevel", "info", "--hostname", f"train-{os.getpid()}@%h"],
            cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        sender = Celery("test-sender", broker=broker_url)
        for _ in range(2):  # a redelivery while the first still trains, or a second worker: the same
            sender.send_task(TRAIN, args=[run_id], queue=Queue.training.value, routing_key=Queue.training.value)
        deadline = time.monotonic() + 600
        while _row(db, run_id).status is not TrainingStatus.completed:
            assert worker.poll() is None, log_path.read_text()[-5000:]
            assert _row(db, run_id).status is not TrainingStatus.failed, log_path.read_text()[-5000:]
            assert time.monotonic() < deadline, log_path.read_text()[-5000:]
            time.sleep(0.5)
        # The second delivery found the run held, retried a lease later, and found it completed.
        while log_path.read_text().count(f"Task {TRAIN}[") < 3 or "succeeded" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()[-5000:]
            time.sleep(0.5)
        text = log_path.read_text()
        assert f"training run {run_id} is held by" in text, text[-5000:]
        done = _row(db, run_id)
        assert done.metrics is not None and done.metrics["resumed_from"] is None and done.metrics["steps"] == 6
        assert done.output_model_id is not None and _student_models(db) == 1
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        db.dispose()
        server.stop()


def test_the_training_task_outlives_the_task_time_limit_and_retries_while_held() -> None:
    """A task whose limits are None gets the worker's (an hour): a run would be killed mid-way; and
    retry()'s max_retries=None means the default 3, after which a held run's copy would give up."""
    from curation.settings import get_settings
    from trainer.tasks import train

    settings = get_settings()
    assert train.time_limit == settings.training_time_limit > settings.task_time_limit
    assert train.soft_time_limit == settings.training_time_limit - 60
    assert train.max_retries is None


def test_a_run_that_cannot_start_is_failed_with_the_reason_and_let_go(
    db: Database, tiny_student: Path, tmp_path: Path
) -> None:
    run_id = _run(db, tiny_student, tmp_path)
    with db.transaction() as session:  # a stored config that no longer reads back
        session.execute(update(TrainingRun).where(TrainingRun.id == run_id).values(config={"batch_size": 0}))
    with pytest.raises(Exception, match="batch size"):
        execute_training_run(db, run_id, progress=False)
    row = _row(db, run_id)
    assert row.status is TrainingStatus.failed and "batch size" in (row.error or "")
    assert row.lease_holder is None  # released: a fixed run can be resumed at once


def test_a_config_stored_before_the_row_budget_reads_back() -> None:
    old = TrainConfig(max_length=4096).as_dict()
    del old["max_tokens_per_row"], old["max_validation_problems"]
    assert TrainConfig.from_dict(old).max_tokens_per_row == 4096
    assert TrainConfig.from_dict(old).max_validation_problems is None  # it carved its split uncapped
    assert TrainConfig.from_dict(TrainConfig().as_dict()).max_validation_problems == 256
    assert TrainConfig(max_length=512).max_tokens_per_row == 2048
    with pytest.raises(CurationError, match="at least --max-length"):
        TrainConfig(max_length=4096, max_tokens_per_row=1024)
