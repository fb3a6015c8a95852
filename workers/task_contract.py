"""What a task and whoever sends it agree on: the dispatcher a task sends its follow-ups through,
and `Deferred`, which a task raises to be run again later.

Tasks, leases and both dispatchers (workers/dispatch.py) use these; this module imports nothing
of ours, so any of them may depend on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Deferred(Exception):
    """A task that cannot run now because another task is doing its work; `retry_in` seconds later
    it may find that work done, or free to take. Celery retries it then; in embedded mode it is
    dropped, since the other task is in another process that will finish it (or whose claim will run
    out, after which a resume sends it again)."""

    def __init__(self, message: str, retry_in: float) -> None:
        super().__init__(message)
        self.retry_in = retry_in


class Dispatcher(Protocol):
    def send(self, task: str, *args: Any) -> None: ...


TaskFunction = Callable[..., Any]
