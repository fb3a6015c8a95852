"""The fork server: a lean, single-threaded process that forks one confined child per program.

Started by `Sandbox` (client.py) with a clean environment. It imports only the standard library
and the modules named in `preload`, then serves batches: each request is a list of programs and
their limits; it keeps up to `in_flight` children running, kills any child whose wall-clock time
runs out (its whole process group), classifies how each one ended, and answers with one result
per program. A child cannot reach the server: it has its own session, the server's descriptors are
closed in it, and signals to processes outside its sandbox are refused.

The server is a child subreaper, so anything a program managed to leave behind is re-parented
here and killed when its batch ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import os
import re
import selectors
import signal
import sys
import time

from curation.db.text import storable
from workers.sandbox import landlock, protocol, seccomp
from workers.sandbox.child import CONFINED, MAX_MESSAGE_CHARS, MAX_VALUE_CHARS, SAFE_ENV, run_child

TYPE_CHECKING = False  # mypy reads it as True; importing typing would load it into the fork server
if TYPE_CHECKING:  # every module the server loads makes each fork and exit dearer
    from typing import Any

PR_SET_CHILD_SUBREAPER = 36
_SIGNAL_STATUS = {
    signal.SIGXCPU: ("timeout", "CPUTimeLimitExceeded"),
    signal.SIGXFSZ: ("killed", "FileSizeLimitExceeded"),
    signal.SIGSEGV: ("killed", "SIGSEGV"),
    signal.SIGBUS: ("killed", "SIGBUS"),
    signal.SIGABRT: ("killed", "SIGABRT"),
    signal.SIGKILL: ("killed", "SIGKILL"),
}


_LOOP = re.compile(r"^([ \t]*)(?:for|while)\b", re.MULTILINE)


def expected_cost(code: str) -> int:
    """A cheap guess at how long a program runs: its loops, nested loops counting more.

    Programs start longest-guess first (the LPT rule for short makespans): a program that loops
    until it is killed then spends its seconds beside the short ones instead of after them.
    """
    return sum(1 + len(indent.expandtabs(4)) // 4 for indent in _LOOP.findall(code))


LONG_RUNNING = 0.1
"""Seconds after which a child is an outlier (a loop, heavy search) and yields the CPU to the
short programs queued behind it: it keeps its whole wall-clock allowance, at the lowest priority."""


class _Running:
    __slots__ = ("deadline", "demoted", "index", "result_fd", "slot", "started", "timed_out")

    def __init__(self, index: int, result_fd: int, slot: int, deadline: float, started: float) -> None:
        self.index, self.result_fd, self.slot = index, result_fd, slot
        self.deadline, self.started, self.timed_out, self.demoted = deadline, started, False, False


def _scratch_dir() -> str:
    # Private directories on tmpfs: making and emptying them on the root filesystem of these
    # machines cost more than running a typical program.
    for root in ("/dev/shm", os.environ.get("TMPDIR", "/tmp"), "/tmp"):
        if os.path.isdir(root) and os.access(root, os.W_OK):
            path = os.path.join(root, f"curation-sandbox-{os.getpid()}")
            os.mkdir(path, 0o700)
            return path
    raise OSError("no writable directory for sandbox scratch space")


class Server:
    def __init__(self, config: dict[str, Any]) -> None:
        self.in_flight = max(1, int(config["in_flight"]))
        for module in config.get("preload", []):
            importlib.import_module(module)
        os.environ.clear()  # no secrets: children inherit this environment and nothing else
        os.environ.update(SAFE_ENV)
        scratch = _scratch_dir()
        abi = landlock.abi_version() if config.get("landlock", True) else 0
        self.landlock = landlock.Policy(landlock.default_read_paths(), abi) if abi else None
        # Without Landlock there is no filesystem policy: the filter then forbids writing files at all.
        self.seccomp = seccomp.Filter(deny_file_writes=self.landlock is None)
        self.base_dir = scratch
        # One private directory per running child, reused once emptied: children never share one.
        self.slot_dirs = [os.path.join(self.base_dir, str(slot)) for slot in range(self.in_flight)]
        for path in self.slot_dirs:
            os.mkdir(path, 0o700)
        self.rulesets = [self.landlock.ruleset(path) if self.landlock else None for path in self.slot_dirs]
        self.free_slots = list(range(self.in_flight))
        self.devnull = os.open(os.devnull, os.O_RDWR)
        self.children: dict[int, _Running] = {}
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.wakeup_r, wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_r, False)
        os.set_blocking(wakeup_w, False)
        signal.set_wakeup_fd(wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd is written
        gc.collect()
        gc.freeze()  # forked children then do not copy pages just to update GC bookkeeping

    def describe(self) -> dict[str, Any]:
        return {"landlock_abi": self.landlock.abi if self.landlock else 0, "pid": os.getpid()}

    def run_batch(self, programs: list[str], limits: dict[str, Any]) -> list[dict[str, Any]]:
        results: list[dict[str, Any] | None] = [None] * len(programs)
        # Popped from the end: the programs guessed to run longest come last in the list.
        pending = sorted(range(len(programs)), key=lambda i: (expected_cost(programs[i]), -i))
        selector = selectors.DefaultSelector()
        selector.register(self.wakeup_r, selectors.EVENT_READ)
        try:
            while pending or self.children:
                while pending and len(self.children) < self.in_flight:
                    index = pending.pop()
                    self._spawn(index, programs[index], limits)
                now = time.monotonic()
                wake_at = now + 0.05
                for pid, running in self.children.items():
                    if running.timed_out:
                        continue
                    if now >= running.deadline:
                        running.timed_out = True
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(pid, signal.SIGKILL)
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                        continue
                    if not running.demoted:
                        if now - running.started >= LONG_RUNNING:
                            running.demoted = True
                            with contextlib.suppress(ProcessLookupError):
                                os.setpriority(os.PRIO_PROCESS, pid, 19)
                        else:
                            wake_at = min(wake_at, running.started + LONG_RUNNING)
                    wake_at = min(wake_at, running.deadline)
                self._reap(results, limits["max_output_bytes"])
                if pending and len(self.children) < self.in_flight:
                    continue
                timeout = max(0.0, wake_at - time.monotonic())
                if selector.select(timeout):
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wakeup_r, 4096):
                            pass
        finally:
            selector.close()
        self._kill_strays()
        lost = {"status": "killed", "error_type": protocol.LOST, "error_message": "no result was recorded"}
        return [r if r is not None else lost for r in results]

    def _spawn(self, index: int, code: str, limits: dict[str, Any]) -> None:
        slot = self.free_slots.pop()
        read_fd, write_fd = os.pipe()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            run_child(code, limits, self.slot_dirs[slot], self.devnull, write_fd, self.rulesets[slot], self.seccomp)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.children[pid] = _Running(index, read_fd, slot, started + limits["wall_seconds"], started)

    def _reap(self, results: list[dict[str, Any] | None], output_cap: int) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            running = self.children.pop(pid, None)
            if running is None:  # an orphan re-parented to us; it is gone now
                continue
            elapsed_ms = (time.monotonic() - running.started) * 1000
            payload = self._drain(running.result_fd)
            os.close(running.result_fd)
            self._empty(self.slot_dirs[running.slot])
            self.free_slots.append(running.slot)
            results[running.index] = _classify(wait_status, payload, running, elapsed_ms, output_cap)

    @staticmethod
    def _empty(path: str) -> None:
        """Remove what a program left in its directory (usually nothing: one scandir)."""
        with os.scandir(path) as entries:
            leftovers = list(entries)
        if leftovers:
            import shutil  # rarely needed, and not worth a place in every child's memory

            for entry in leftovers:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)

    @staticmethod
    def _drain(fd: int) -> bytes:
        chunks = []
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def _kill_strays(self) -> None:
        """Kill and reap anything re-parented to us (seccomp should leave nothing, but be sure)."""
        mine = str(os.getpid())
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == mine:  # field 4: ppid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry), signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.base_dir, ignore_errors=True)


_PROGRAM_STATUSES = frozenset(("ok", "error", "syntax", "memory"))
_TEXT_CAPS = {"value": MAX_VALUE_CHARS, "value_type": 100, "error_type": 200, "error_message": MAX_MESSAGE_CHARS}


def _program_report(body: bytes, output_cap: int) -> dict[str, Any] | None:
    """The child's report, checked field by field: the program shares the child's process and can
    write to the result pipe itself, so the report is untrusted input. None if it is malformed."""
    try:
        report = json.loads(body)
    except ValueError:
        return None
    if not isinstance(report, dict) or report.get("status") not in _PROGRAM_STATUSES:
        return None
    for key, value in report.items():
        if key in _TEXT_CAPS:
            if value is not None and not isinstance(value, str):
                return None
            if value is not None:
                report[key] = storable(value[: _TEXT_CAPS[key]])
        elif key in ("stdout", "stderr"):
            if not isinstance(value, str):
                return None
            report[key] = storable(value[:output_cap])
        elif key == "output_truncated":
            if not isinstance(value, bool):
                return None
        elif key == "duration_ms":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e9:
                return None
        elif key != "status":
            return None
    return report


def _setup_failure(payload: bytes, wait_status: int, elapsed_ms: float) -> dict[str, Any]:
    try:
        reported = json.loads(payload)
        message = str(reported["error_message"]) if isinstance(reported, dict) else ""
    except (ValueError, KeyError):
        message = ""
    if not message:
        message = f"the child ended (wait status {wait_status}) before it was confined"
    return {
        "status": "killed",
        "error_type": protocol.SETUP_FAILED,
        "error_message": storable(message[:MAX_MESSAGE_CHARS]),
        "duration_ms": elapsed_ms,
    }


def _classify(
    wait_status: int, payload: bytes, running: _Running, elapsed_ms: float, output_cap: int
) -> dict[str, Any]:
    if not payload.startswith(CONFINED):  # the program never ran
        return _setup_failure(payload, wait_status, elapsed_ms)
    body = payload[len(CONFINED) :]
    reported = _program_report(body, output_cap) if body else None
    if running.timed_out:
        # A child that finished just before its deadline may not have been reaped yet when the
        # deadline passed: its own complete report, timed inside the child, wins.
        limit_ms = (running.deadline - running.started) * 1000
        if reported is not None and float(reported.get("duration_ms", limit_ms + 1)) <= limit_ms:
            return reported
        return {
            "status": "timeout",
            "error_type": "TimeoutError",
            "error_message": f"wall-clock limit reached after {elapsed_ms:.0f} ms",
            "duration_ms": elapsed_ms,
        }
    if os.WIFSIGNALED(wait_status):
        signum = os.WTERMSIG(wait_status)
        name = signal.Signals(signum)
        status, error_type = _SIGNAL_STATUS.get(name, ("killed", name.name))
        return {
            "status": status,
            "error_type": error_type,
            "error_message": f"terminated by {signal.Signals(signum).name}",
            "duration_ms": elapsed_ms,
        }
    if body and reported is None:
        return {
            "status": "killed",
            "error_type": "InvalidResult",
            "error_message": "the program wrote to the sandbox's result channel",
            "duration_ms": elapsed_ms,
        }
    if reported is None:
        code = os.WEXITSTATUS(wait_status)
        return {
            "status": "error",
            "error_type": "Exit",
            "error_message": f"exited with status {code} before reporting",
            "duration_ms": elapsed_ms,
        }
    return reported


def main() -> None:
    request_fd, response_fd = int(sys.argv[1]), int(sys.argv[2])
    config = json.loads(sys.argv[3])
    server = Server(config)
    try:
        protocol.send(response_fd, {"ready": server.describe()})
        while True:
            try:
                request = protocol.receive(request_fd)
            except protocol.ProtocolError:
                return  # the client went away
            results = server.run_batch(request["programs"], request["limits"])
            protocol.send(response_fd, {"id": request["id"], "results": results})
    finally:
        server.close()


if __name__ == "__main__":
    main()
