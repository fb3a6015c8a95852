"""Framing between the sandbox client and its fork server: a 4-byte length, then JSON."""

from __future__ import annotations

import json
import os
import struct

TYPE_CHECKING = False  # mypy reads it as True; importing typing would load it into the fork server
if TYPE_CHECKING:
    from typing import Any

MAX_MESSAGE = 256 * 1024 * 1024
SETUP_FAILED = "SandboxSetupError"
LOST = "SandboxLost"
SANDBOX_FAILURES = frozenset({SETUP_FAILED, LOST})
"""error_type of a result whose program never ran because the sandbox failed: the client raises
SandboxError for these instead of returning them, since they say nothing about the program."""


class ProtocolError(EOFError):
    pass


def send(fd: int, message: Any) -> None:
    payload = json.dumps(message, separators=(",", ":")).encode()
    data = struct.pack("!I", len(payload)) + payload
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise ProtocolError("the other side closed the pipe")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def receive(fd: int) -> Any:
    (size,) = struct.unpack("!I", _read_exactly(fd, 4))
    if size > MAX_MESSAGE:
        raise ProtocolError(f"message of {size} bytes exceeds the limit")
    return json.loads(_read_exactly(fd, size))
