"""Running a synthesis run to completion, embedded (in this process) or distributed (on workers).

Embedded: tasks run in-process, a thread per queue, until none is left; then the database is asked
whether anything is still missing (a generation a crash interrupted, say) and that is done too.
Distributed: the caller only watches. The run's counters say how far it got; when they stop
moving for `stall_seconds` while work is left (a broker restarted and lost its queue, a worker was
killed and its message waits out the visibility timeout), the missing work is sent again.
Sending work twice is harmless: every task skips what is done. After `max_stalls` resends in a
row with no progress and no task holding a batch (no worker is taking the work), the run is
marked failed with the reason, instead of being watched forever; `curation runs resume` revives it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from curation.db.session import Database
from curation.repositories.runs import fail_run
from workers.dispatch import Dispatcher, InlineDispatcher
from workers.queues import Queue
from workers.runtime import Runtime, TeacherFactory
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
    dispatcher: Dispatcher,
    run_id: int,
    *,
    poll_seconds: float = 1.0,
    stall_seconds: float = 60.0,
    timeout: float | None = None,
    max_stalls: int = 5,
    on_progress: ProgressCallback | None = None,
) -> RunProgress:
    started = time.monotonic()
    last_change = started
    previous: tuple[int, int, int] | None = None
    stalls = 0
    while True:
        current = progress_of(db, run_id)
        if on_progress:
            on_progress(current)
        if current.done:
            return current
        now = time.monotonic()
        state = (current.generated, current.failed, current.labelled)
        if state != previous:
            previous, last_change, stalls = state, now, 0
        elif now - last_change >= stall_seconds:
            report = resume_run(db, dispatcher, run_id)  # messages may be lost: send what is missing again
            last_change = now
            stalls = 0 if report.leased else stalls + 1  # a live lease: a worker is on it, only slowly
            if stalls >= max_stalls:
                reason = (
                    f"no progress in {stalls} x {stall_seconds:.0f} s with work left and resent each time: "
                    "are workers consuming the generation, execution and verification queues?"
                )
                with db.transaction() as session:
                    fail_run(session, run_id, reason)
                continue
        if timeout is not None and now - started >= timeout:
            return current
        time.sleep(poll_seconds)
