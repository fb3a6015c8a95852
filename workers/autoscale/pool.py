"""The local worker pool: `curation worker` processes on this machine, started and stopped to
follow the policy's decisions.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from workers.autoscale.metrics import WORKER_ID_ENV

WorkerCommand = Callable[[str, int], Sequence[str]]


def curation_worker_command(queue: str, concurrency: int) -> list[str]:
    """argv of one worker process serving `queue`."""
    return [sys.executable, "-m", "curation.cli.app", "worker", "--queues", queue, "--concurrency", str(concurrency)]


def process_start_ticks(pid: int) -> int | None:
    """When the kernel started process `pid` (clock ticks since boot), or None if it is not running.

    A pid alone can be reused by an unrelated process once ours has exited; pid plus start time
    cannot. A zombie (exited, not yet reaped) counts as not running. Linux only (/proc).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces and parentheses itself.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of proc(5), starttime


@dataclass
class ManagedWorker:
    """A worker process this pool started (and so may stop).

    start_ticks: its kernel start time, checked before every signal so that a reused pid is never
    signalled. stop_deadline: set once SIGTERM was sent; past it the process group gets SIGKILL.
    process: the Popen handle while the process is a child of this one (None once adopted from a
    state file written by an earlier run).
    """

    queue: str
    worker_id: str
    pid: int
    start_ticks: int
    started_at: float
    stop_deadline: float | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    killed: bool = field(default=False, compare=False)

    @property
    def stopping(self) -> bool:
        return self.stop_deadline is not None

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return process_start_ticks(self.pid) == self.start_ticks

    def as_record(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "worker_id": self.worker_id,
            "pid": self.pid,
            "start_ticks": self.start_ticks,
            "started_at": self.started_at,
            "stop_deadline": self.stop_deadline,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ManagedWorker:
        return cls(
            queue=str(record["queue"]),
            worker_id=str(record["worker_id"]),
            pid=int(record["pid"]),
            start_ticks=int(record["start_ticks"]),
            started_at=float(record["started_at"]),
            stop_deadline=record.get("stop_deadline"),
        )


class LocalWorkerPool:
    """Worker processes on this machine, per queue. Only ever signals processes it started.

    Each worker gets its own session (process group): Ctrl-C at the terminal then reaches only the
    autoscaler, which stops the workers in order (SIGTERM: Celery's warm shutdown finishes the
    running tasks), and a SIGKILL after `stop_timeout` takes the worker's pool children with it.
    Stopping does not block: `scale` sends SIGTERM and `reap` (called every step) escalates.
    """

    def __init__(
        self,
        command: WorkerCommand = curation_worker_command,
        *,
        concurrency: int = 1,
        env: Mapping[str, str] | None = None,
        stop_timeout: float = 60.0,
        log_dir: Path | None = None,
        adopt: Iterable[ManagedWorker] = (),
    ) -> None:
        """env: variables set for the workers on top of this process's environment.
        log_dir: each worker's stdout and stderr go to <log_dir>/<worker id>.log (default: ours).
        adopt: workers started by an earlier run (from its state file); the first `reap` drops
        those no longer running, or whose pid now belongs to another process."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.command = command
        self.concurrency = concurrency
        self.env = dict(env or {})
        self.stop_timeout = stop_timeout
        self.log_dir = log_dir
        self._workers = list(adopt)

    @property
    def workers(self) -> list[ManagedWorker]:
        return list(self._workers)

    def running(self, queue: str) -> int:
        """Workers serving `queue`, not counting those being stopped."""
        return sum(1 for worker in self._workers if worker.queue == queue and not worker.stopping)

    def counts(self, queues: Iterable[str]) -> dict[str, int]:
        return {queue: self.running(queue) for queue in queues}

    def scale(self, queue: str, count: int, now: float | None = None) -> list[str]:
        """Start or stop workers of `queue` until `count` are running; returns what was done."""
        moment = time.time() if now is None else now
        active = [worker for worker in self._workers if worker.queue == queue and not worker.stopping]
        actions = []
        for _ in range(count - len(active)):
            worker = self._start(queue, moment)
            actions.append(f"started {worker.worker_id} (pid {worker.pid})")
        # Newest first: a new worker may still be starting up and has the least work in hand.
        for worker in sorted(active, key=lambda w: w.started_at, reverse=True)[: max(0, len(active) - count)]:
            worker.stop_deadline = moment + self.stop_timeout
            self._signal(worker, signal.SIGTERM)
            actions.append(f"stopping {worker.worker_id} (pid {worker.pid})")
        return actions

    def reap(self, now: float | None = None) -> list[str]:
        """Forget workers that have exited; SIGKILL those that outlived their stop deadline."""
        moment = time.time() if now is None else now
        actions = []
        for worker in list(self._workers):
            if not worker.alive():
                self._workers.remove(worker)
                if worker.stopping:
                    how = "stopped"
                elif worker.process is not None:
                    how = f"exited unexpectedly (code {worker.process.returncode})"
                else:
                    how = "is gone (it was started by an earlier run)"
                actions.append(f"{worker.worker_id} {how}")
            elif worker.stop_deadline is not None and moment >= worker.stop_deadline and not worker.killed:
                self._signal(worker, signal.SIGKILL, group=True)
                worker.killed = True
                actions.append(f"killed {worker.worker_id} (pid {worker.pid}) after {self.stop_timeout:g}s")
        return actions

    def stop_all(self, timeout: float | None = None) -> list[str]:
        """Stop every worker and wait: SIGTERM, then SIGKILL after `timeout` (default stop_timeout)."""
        grace = self.stop_timeout if timeout is None else timeout
        moment = time.time()
        for worker in self._workers:
            if not worker.stopping:
                worker.stop_deadline = moment + grace
                self._signal(worker, signal.SIGTERM)
        actions = []
        give_up = moment + grace + 10.0  # SIGKILL'd processes vanish at once; this is only a bound
        while self._workers and time.time() < give_up:
            actions += self.reap()
            if self._workers:
                time.sleep(0.05)
        return actions

    def _start(self, queue: str, now: float) -> ManagedWorker:
        worker_id = f"{queue}-{secrets.token_hex(4)}@{socket.gethostname()}"
        argv = list(self.command(queue, self.concurrency))
        env = {**os.environ, **self.env, WORKER_ID_ENV: worker_id}
        with contextlib.ExitStack() as stack:
            log: IO[bytes] | None = None
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                log = stack.enter_context((self.log_dir / f"{worker_id}.log").open("ab"))
            process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT if log is not None else None,
                start_new_session=True,
            )
        ticks = process_start_ticks(process.pid)
        worker = ManagedWorker(queue, worker_id, process.pid, ticks or 0, now, process=process)
        self._workers.append(worker)
        return worker

    @staticmethod
    def _signal(worker: ManagedWorker, signum: int, *, group: bool = False) -> None:
        with contextlib.ExitStack() as stack:
            if worker.process is None and hasattr(os, "pidfd_open"):
                # Not our child, so nothing reserves its pid: an open pidfd does, from the identity
                # check below until the signal has been sent.
                try:
                    stack.callback(os.close, os.pidfd_open(worker.pid))
                except ProcessLookupError:
                    return
            if not worker.alive():  # exited: its pid may belong to someone else by now
                return
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(worker.pid, signum)  # its own session: the group is the worker and its children
                else:
                    os.kill(worker.pid, signum)
