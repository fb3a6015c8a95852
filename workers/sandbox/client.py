"""The sandbox as the rest of the system sees it: hand over programs, get results back.

    with Sandbox() as sandbox:
        results = sandbox.run_many(programs)          # many programs per call

One fork server per Sandbox, started on first use and restarted if it ever dies. Nothing a
program does can reach the calling process: it runs in a child of that separate server.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workers.sandbox import protocol
from workers.sandbox.limits import Limits
from workers.sandbox.result import SandboxResult, Status

# Imported once in the server, so programs get them at fork cost instead of import cost.
DEFAULT_PRELOAD = (
    "math", "cmath", "fractions", "decimal", "statistics", "itertools", "functools", "collections",
    "datetime", "random", "re", "string", "operator", "heapq", "bisect", "json", "copy",
)  # fmt: skip
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class SandboxError(RuntimeError):
    """The sandbox itself failed (it could not start); never raised for what a program does."""


class Sandbox:
    def __init__(
        self,
        limits: Limits | None = None,
        *,
        in_flight: int | None = None,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        landlock: bool = True,
    ) -> None:
        """in_flight: children running at once (default 4 per CPU: programs that wait out their
        timeout should not hold a core's worth of throughput). landlock=False tests the fallback
        used on kernels without Landlock (no file writes at all)."""
        self.limits = limits or Limits()
        self.in_flight = in_flight or max(2, 4 * (os.cpu_count() or 1))
        self.preload = list(preload)
        self.landlock = landlock
        self.info: dict[str, Any] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._request_fd = self._response_fd = -1
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
        config = {"in_flight": self.in_flight, "preload": self.preload, "landlock": self.landlock}
        # -S: no site hooks (.pth files import things the server does not need); the import path
        # is this process's own, passed explicitly.
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
        self.info = hello["ready"]

    def run(self, code: str, limits: Limits | None = None) -> SandboxResult:
        return self.run_many([code], limits)[0]

    def run_many(self, programs: Sequence[str], limits: Limits | None = None) -> list[SandboxResult]:
        """Run every program (each in a fresh confined child) and return their results in order."""
        if not programs:
            return []
        message = {"programs": list(programs), "limits": (limits or self.limits).for_child()}
        with self._lock:
            for attempt in (1, 2):
                self.start()
                try:
                    protocol.send(self._request_fd, message)
                    reply = protocol.receive(self._response_fd)
                    return [SandboxResult.from_wire(r) for r in reply["results"]]
                except (protocol.ProtocolError, BrokenPipeError):
                    self._stop()  # the server died; start a fresh one and try the batch once more
                    if attempt == 2:
                        break
        lost = SandboxResult(
            Status.killed, error_type="SandboxServerDied", error_message="the sandbox server died twice"
        )
        return [lost] * len(programs)

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
        self._process = None

    def close(self) -> None:
        with self._lock:
            self._stop()
