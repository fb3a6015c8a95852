"""The task registry: names, the functions behind them, and the queue each is routed to.

Task functions take the process's Runtime and ids only (JSON-serialisable), skip work that is
already done, and send follow-ups only after committing, so any delivery order or repetition is safe.
"""

from __future__ import annotations

from typing import Any

from workers.queues import Queue
from workers.synthesis import EXECUTE, GENERATE, VERIFY, execute_task, generate_batch, verify_task

TASKS: dict[str, Any] = {GENERATE: generate_batch, EXECUTE: execute_task, VERIFY: verify_task}
ROUTES: dict[str, str] = {
    GENERATE: Queue.generation.value,
    EXECUTE: Queue.execution.value,
    VERIFY: Queue.verification.value,
}
