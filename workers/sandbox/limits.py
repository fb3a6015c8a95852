"""What a sandboxed program may use. Stored with every execution, so results can be compared."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    """Per-program limits. The defaults suit the word-problem programs of PaD, PAL and PoT.

    wall_seconds: wall-clock limit; the server kills the whole process group when it passes.
    cpu_seconds: CPU-time limit (RLIMIT_CPU); defaults to the wall-clock limit.
    memory_mb: memory: the address-space limit (RLIMIT_AS, which includes the interpreter itself)
        plus the private directory's tmpfs, whose size is taken out of it.
    max_processes: RLIMIT_NPROC (the seccomp filter forbids new processes and threads anyway).
    max_open_files: RLIMIT_NOFILE.
    max_file_mb: the size of the program's private directory (a tmpfs when the worker is root) and
        the largest file it may write there (RLIMIT_FSIZE); 0: no writable directory at all.
    max_output_bytes: how much of stdout and of stderr is kept (the rest is counted, not stored).
    """

    wall_seconds: float = 2.0
    cpu_seconds: float | None = None
    memory_mb: int = 512
    max_processes: int = 1
    max_open_files: int = 64
    max_file_mb: int = 8
    max_output_bytes: int = 16_384

    def __post_init__(self) -> None:
        if self.wall_seconds <= 0 or self.memory_mb <= 0 or self.max_output_bytes < 0:
            raise ValueError(f"invalid sandbox limits: {self}")

    @property
    def cpu_limit(self) -> int:
        return max(1, math.ceil(self.cpu_seconds if self.cpu_seconds is not None else self.wall_seconds))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def for_child(self) -> dict[str, int | float]:
        """What the fork server and its children need, in the units they use."""
        return {
            "wall_seconds": self.wall_seconds,
            "cpu_seconds": self.cpu_limit,
            "memory_bytes": self.memory_mb * 1024 * 1024,
            "max_processes": self.max_processes,
            "max_open_files": self.max_open_files,
            "max_file_bytes": self.max_file_mb * 1024 * 1024,
            "max_output_bytes": self.max_output_bytes,
        }

    def digest(self) -> str:
        """Stable hash of the limits: the same program under the same limits is the same execution."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Limits:
        return cls(**values)
