"""The outcome of one sandboxed program."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Status(enum.StrEnum):
    """Same values as curation.models.ExecutionStatus (kept apart so the fork server stays lean)."""

    ok = "ok"
    error = "error"
    timeout = "timeout"
    memory = "memory"
    killed = "killed"
    syntax = "syntax"


@dataclass(frozen=True)
class SandboxResult:
    """status: how the program ended. value: the answer it produced, as text (see child.py for the
    rules), with `value_type` the Python type it had. error_type/error_message: the exception, or
    the signal that ended it. stdout/stderr: the first max_output_bytes of each;
    `output_truncated` says whether more was written."""

    status: Status
    value: str | None = None
    value_type: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    stdout: str = ""
    stderr: str = ""
    output_truncated: bool = False
    duration_ms: float = 0.0

    def to_wire(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, Status) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> SandboxResult:
        return cls(**{**data, "status": Status(data["status"])})
