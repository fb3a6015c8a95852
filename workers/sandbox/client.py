"""The sandbox as the rest of the system sees it: hand over programs, get results back.

    with Sandbox() as sandbox:
        results = sandbox.run_many(programs)          # many programs per call

One fork server per Sandbox, started on first use and restarted if it ever dies. Nothing a
program does can reach the calling process: it runs in a child of that separate server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workers.sandbox import protocol
from workers.sandbox.landlock import default_read_paths
from workers.sandbox.limits import Limits
from workers.sandbox.protocol import SANDBOX_FAILURES
from workers.sandbox.result import SandboxResult, Status
from workers.sandbox.server import remove_tree

log = logging.getLogger(__name__)

# Imported once in the server, so programs get them at fork cost instead of import cost.
DEFAULT_PRELOAD = (
    "math", "cmath", "fractions", "decimal", "statistics", "itertools", "functools", "collections",
    "datetime", "random", "re", "string", "operator", "heapq", "bisect", "json", "copy",
)  # fmt: skip
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class SandboxError(RuntimeError):
    """The sandbox itself failed: its server could not start or kept dying, or a child could not be
    confined. Never raised for what a program does. Transient for a worker: the batch can be retried,
    and nothing about its programs is recorded."""


def default_in_flight(limits: Limits) -> int:
    """Children running at once: 4 per usable CPU (programs that wait out their timeout should not
    hold a core's worth of throughput), but no more than memory allows if each used its whole
    allowance (the smaller of available memory and the cgroup's limit)."""
    by_cpu = 4 * len(os.sched_getaffinity(0))
    budget = _memory_budget()
    by_memory = budget // (limits.memory_mb * 1024 * 1024) if budget else by_cpu
    return max(2, min(by_cpu, by_memory))


def _memory_budget() -> int | None:
    budgets = []
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                budgets.append(int(line.split()[1]) * 1024)
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            budgets.append(int(limit))
    return min(budgets) if budgets else None


class Sandbox:
    def __init__(
        self,
        limits: Limits | None = None,
        *,
        in_flight: int | None = None,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        uid_base: int | None = None,
    ) -> None:
        """in_flight: children running at once (default: see default_in_flight).

        uid_base: where the server runs as root, slot N's programs run as uid and gid
        uid_base + N (default: CURATION_SANDBOX_UID). Ignored for a worker that is not root.
        """
        self.limits = limits or Limits()
        self.in_flight = in_flight or default_in_flight(self.limits)
        self.preload = list(preload)
        if uid_base is None:
            from curation.settings import get_settings

            uid_base = get_settings().sandbox_uid
        self.uid_base = uid_base
        self.info: dict[str, Any] = {}
        self.notices: list[str] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._request_fd = self._response_fd = -1
        self._requests = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        request_r, request_w = os.pipe()
        response_r, response_w = os.pipe()
        config = {
            "in_flight": self.in_flight,
            "preload": self.preload,
            "uid_base": self.uid_base,
            # This interpreter's own view (a virtualenv's prefix and site-packages): the server runs
            # without site and would not know them.
            "read_paths": default_read_paths(exclude=[_PACKAGE_ROOT]),
        }
        # -S: no site hooks (.pth files import things the server does not need); the import path
        # is this process's own, passed explicitly. -P: the working directory is not on it.
        import_path = [_PACKAGE_ROOT] + [p for p in sys.path if p and os.path.isdir(p)]
        environment = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join(dict.fromkeys(import_path)),
            "PYTHONHASHSEED": "0",  # set and dict order of strings is the same on every run
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-S",
                    "-P",
                    "-c",
                    "from workers.sandbox.server import main; main()",
                    str(request_r),
                    str(response_w),
                    json.dumps(config),
                ],
                pass_fds=(request_r, response_w),
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                cwd="/",
                start_new_session=True,  # a Ctrl-C meant for the worker is the worker's to handle
            )
        finally:
            os.close(request_r)
            os.close(response_w)
        self._request_fd, self._response_fd = request_w, response_r
        try:
            hello = protocol.receive(self._response_fd)
        except protocol.ProtocolError:
            code = self._process.wait(timeout=10)
            self._close_pipes()
            raise SandboxError(f"the sandbox server exited with status {code} while starting") from None
        if "error" in hello:
            self._stop()
            raise SandboxError(
                f"{hello['error']}: programs cannot be confined here. Run the workers on Linux 5.13 or "
                "later with Landlock enabled (the `lsm=` boot parameter must list landlock), or in a VM "
                "that has it; see docs/verification.md"
            )
        self.info = hello["ready"]

    def run(self, code: str, limits: Limits | None = None) -> SandboxResult:
        return self.run_many([code], limits)[0]

    def run_many(self, programs: Sequence[str], limits: Limits | None = None) -> list[SandboxResult]:
        """Run every program (each in a fresh confined child) and return their results in order.

        Raises SandboxError if the sandbox fails (not a program): the server dies twice on this
        batch, or a child cannot be confined.
        """
        if not programs:
            return []
        limits_for_child = (limits or self.limits).for_child()
        with self._lock:
            for _attempt in (1, 2):
                self.start()
                self._requests += 1
                message = {"id": self._requests, "programs": list(programs), "limits": limits_for_child}
                try:
                    protocol.send(self._request_fd, message)
                    reply = protocol.receive(self._response_fd)
                    if reply.get("id") != message["id"]:
                        raise protocol.ProtocolError(f"reply {reply.get('id')} to request {message['id']}")
                except (protocol.ProtocolError, BrokenPipeError):
                    self._stop()  # the server died; start a fresh one and try the batch once more
                    continue
                except BaseException:
                    # Interrupted mid-exchange (a soft time limit, Ctrl-C): the reply still on its way
                    # would be read as the answer to the next batch, so this server must go.
                    self._stop()
                    raise
                for notice in reply.get("notices", []):
                    log.warning("%s", notice)
                    self.notices.append(notice)
                results = [SandboxResult.from_wire(r) for r in reply["results"]]
                failed = [r for r in results if r.status is Status.killed and r.error_type in SANDBOX_FAILURES]
                if failed:
                    self._stop()
                    raise SandboxError(
                        f"{len(failed)} of {len(results)} programs could not be run: {failed[0].error_message}"
                    )
                return results
        raise SandboxError("the sandbox server died twice while running this batch")

    def _close_pipes(self) -> None:
        for fd in (self._request_fd, self._response_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._request_fd = self._response_fd = -1

    def _stop(self) -> None:
        self._close_pipes()  # the server sees EOF and exits
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            # An unprivileged server that was killed could not remove its scratch directory (its
            # children die with it: they have a parent-death signal). A root server's scratch space
            # lives in its own mount namespace and is gone with it.
            scratch = self.info.get("scratch")
            if scratch and not self.info.get("privileged") and os.path.isdir(scratch):
                remove_tree(scratch)
        self._process = None

    def close(self) -> None:
        with self._lock:
            self._stop()
