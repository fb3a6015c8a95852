"""A private redis-server for the tests that run real Celery workers: started on a free port,
keeping nothing on disk, so a test may restart it, and nothing a test leaves in it (a retry
waiting for its countdown, say) reaches another test."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A private redis-server that keeps nothing on disk, as the project's machines run it."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary, self.directory, self.port = binary, directory, _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._handed_out = False  # once started, the URL is in use: a restart keeps the port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # The port was free when probed, not reserved: another process may take it before the
        # server binds it. A first start then moves to another port; a restart (workers hold
        # the URL) tries the same one again.
        for attempt in range(5):
            if attempt and not self._handed_out:
                self.port = _free_port()
            process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.directory)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            if self._answers(process):
                self.process, self._handed_out = process, True
                return
            process.kill()
            process.wait()
            time.sleep(0.2 * attempt)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def _answers(self, process: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
        """Whether this very process answers on the port (not another one that took it first):
        False as soon as it has exited (it could not bind), or after `timeout`."""
        client = redis.Redis.from_url(self.url, socket_timeout=5)
        deadline = time.monotonic() + timeout
        try:
            while process.poll() is None and time.monotonic() < deadline:
                try:
                    if int(client.info("server")["process_id"]) == process.pid:
                        return True
                except redis.RedisError:  # not up yet, or someone else's (not Redis) on the port
                    pass
                time.sleep(0.05)
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
