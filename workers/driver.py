"""Running a synthesis run to completion, embedded (in this process) or distributed (on workers).

Embedded: tasks run in-process, a thread per queue, until none is left; then the database is asked
whether anything is still missing (a generation a crash interrupted, say) and that is done too.
Distributed: the caller only watches, and the run's counters say how far it got. Finding lost
work and sending it again is the supervisor's job (workers/supervisor.py): `curation supervise`
beside the workers, or, while none runs, the waiting command itself for its own run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from curation.db.session import Database
from workers.dispatch import CeleryDispatcher, InlineDispatcher
from workers.queues import Queue
from workers.runtime import Runtime, TeacherFactory
from workers.supervisor import Supervisor, supervisor_running
from workers.synthesis import RunProgress, resume_run, run_progress, start_run
from workers.tasks import ROUTES, TASKS

ProgressCallback = Callable[[RunProgress], object]


def progress_of(db: Database, run_id: int) -> RunProgress:
    with db.read() as session:
        return run_progress(session, run_id)


def run_embedded(
    db: Database,
    run_id: int,
    *,
    on_progress: ProgressCallback | None = None,
    teacher_factory: TeacherFactory | None = None,
    sandbox_in_flight: int | None = None,
    retry_failed: bool = False,
) -> RunProgress:
    # Two execution threads, each with its own sandbox: one runs programs while the other reads
    # and writes the database, so the sandbox (most of the CPU a program run needs) never idles.
    dispatcher = InlineDispatcher(TASKS, ROUTES, threads={Queue.execution.value: 2})
    runtime = Runtime(db, dispatcher, teacher_factory=teacher_factory, sandbox_in_flight=sandbox_in_flight)
    report = (lambda _task: on_progress(progress_of(db, run_id))) if on_progress else None
    try:
        if progress_of(db, run_id).status.value == "pending":
            start_run(db, dispatcher, run_id)
        else:
            resume_run(db, dispatcher, run_id, retry_failed=retry_failed)
        for _round in range(3):  # the database's own account of what is left, until nothing is
            if not dispatcher.drain(runtime, report):
                break
            resume_run(db, dispatcher, run_id)
    finally:
        runtime.close()
    final = progress_of(db, run_id)
    if on_progress:
        on_progress(final)
    return final


def wait_distributed(
    db: Database,
    dispatcher: CeleryDispatcher,
    run_id: int,
    *,
    poll_seconds: float = 1.0,
    stall_seconds: float = 60.0,
    timeout: float | None = None,
    max_stalls: int = 5,
    on_progress: ProgressCallback | None = None,
) -> RunProgress:
    """Watch a distributed run until it ends (or `timeout`); while no `curation supervise` is
    running, supervise this run here (workers/supervisor.py), with the same rules."""
    supervisor = Supervisor(db, dispatcher.app, dispatcher, stall_seconds=stall_seconds, max_stalls=max_stalls)
    started = time.monotonic()
    while True:
        current = progress_of(db, run_id)
        if on_progress:
            on_progress(current)
        if current.done:
            return current
        if not supervisor_running(supervisor.redis):
            supervisor.tick_safely([run_id])
        if timeout is not None and time.monotonic() - started >= timeout:
            return current
        time.sleep(poll_seconds)
