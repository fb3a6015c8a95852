"""The Celery application: one configuration, three queues, thin tasks over workers/tasks.py.

    curation worker --queues generation --pool threads --concurrency 16     # waits on the teacher
    curation worker --queues execution,verification --concurrency 2         # runs programs (CPU)

Reliability settings, and why: tasks are acknowledged late (after they finish) and rejected if
their worker dies, so a crash means redelivery, never loss; every task is idempotent, which makes
redelivery harmless. Prefetch is 1, so a long task does not sit on messages other workers could
take. The Redis visibility timeout exceeds the task time limit, so a slow task is not handed to a
second worker while the first still runs. Results are not stored: the database is the result.
Only transient failures (a database or broker connection, the sandbox itself) are retried, at most 5 times, with
exponential backoff and jitter; a failed program or a teacher that keeps failing is a result
the task stores, not an exception.
"""

from __future__ import annotations

import math
import random
from typing import Any

import redis
from celery import Celery, signals
from kombu.entity import Queue as KombuQueue
from kombu.exceptions import OperationalError as BrokerOperationalError
from sqlalchemy.exc import InterfaceError, OperationalError

from curation.db.session import Database
from curation.settings import Settings, get_settings
from workers.autoscale.metrics import record_completed
from workers.dispatch import CeleryDispatcher
from workers.queues import Queue
from workers.runtime import Runtime
from workers.sandbox.client import SandboxError
from workers.synthesis import EXECUTE, GENERATE, VERIFY
from workers.task_contract import Deferred
from workers.tasks import ROUTES, TASKS

TRANSIENT: tuple[type[BaseException], ...] = (
    OperationalError,  # the database's (SQLAlchemy)
    InterfaceError,
    # The broker's, met when a task sends its follow-ups. Neither derives from the built-in
    # ConnectionError or TimeoutError, so each is named.
    BrokerOperationalError,
    redis.ConnectionError,
    redis.TimeoutError,
    ConnectionError,
    TimeoutError,
    SandboxError,  # the sandbox, not a program, failed: nothing was stored, so the batch runs again
)


def celery_config(settings: Settings) -> dict[str, Any]:
    time_limit = settings.task_time_limit
    visibility = settings.visibility_timeout or 2 * time_limit
    if visibility <= time_limit:
        raise ValueError(f"visibility timeout ({visibility} s) must exceed the task time limit ({time_limit} s)")
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # a broker restart is waited out, not fatal
        "broker_transport_options": {
            "visibility_timeout": visibility,
            # How often a worker looks for messages whose worker died (delivered, unacknowledged, older
            # than the visibility timeout) and puts them back in their queue. kombu's default sweep,
            # every 10 s but scanning only every 10th time, takes up to 100 s on top of the timeout.
            "unacked_restore_interval": max(1, min(10, visibility // 10)),
            "unacked_restore_throttle": 1,
            # The sweep's lock in Redis: a worker killed during a sweep would otherwise block every
            # sweep for kombu's 5 minutes. Two sweeps at once are safe (each restore is a transaction).
            "unacked_mutex_expire": 30,
        },
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "task_store_errors_even_if_ignored": False,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_time_limit": time_limit,
        "task_soft_time_limit": settings.soft_time_limit,
        "worker_prefetch_multiplier": 1,
        "worker_max_tasks_per_child": 500,  # bounds leaks in long-lived processes (torch, httpx)
        "worker_cancel_long_running_tasks_on_connection_loss": True,  # they are redelivered; all idempotent
        "worker_send_task_events": False,
        "task_queues": [KombuQueue(queue.value, routing_key=queue.value) for queue in Queue],
        "task_default_queue": Queue.verification.value,
        "task_routes": {name: {"queue": queue, "routing_key": queue} for name, queue in ROUTES.items()},
    }


app = Celery("curation")
app.conf.update(celery_config(get_settings()))

_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime(Database(get_settings().database_url), CeleryDispatcher(app, ROUTES))
    return _runtime


@signals.worker_process_init.connect
def _fresh_after_fork(**_: Any) -> None:
    global _runtime
    _runtime = None  # never use the parent's connections or sandbox server in a forked child


@signals.worker_process_shutdown.connect
def _close(**_: Any) -> None:
    if _runtime is not None:
        _runtime.close()


_metrics: redis.Redis | None = None


@signals.task_postrun.connect
def _record_completion(sender: Any = None, **_: Any) -> None:
    """Completion rates per queue, for `curation autoscale` (a failure here never fails a task)."""
    global _metrics
    queue = ROUTES.get(getattr(sender, "name", ""))
    if queue is None or not str(app.conf.broker_url or "").startswith("redis"):
        return
    if _metrics is None:
        _metrics = redis.Redis.from_url(app.conf.broker_url)
    record_completed(_metrics, queue)


_RETRY = {
    "autoretry_for": TRANSIENT,
    "max_retries": 5,
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
}


def _deferred_retries() -> int:
    # A batch is held at most as long as the task holding it may run; a few more for the claims
    # that run out after a crash.
    settings = get_settings()
    return math.ceil(settings.task_time_limit / settings.lease_seconds) + 5


@app.task(bind=True, name=GENERATE, **_RETRY)
def generate(self: Any, run_id: int, problem_ids: list[int], retry_failed: bool = False) -> int:
    try:
        return int(TASKS[GENERATE](runtime(), run_id, problem_ids, retry_failed))
    except Deferred as deferred:
        # Another task is generating this batch: come back when its claim would run out, by which
        # time the batch is done (and this delivery finds nothing to do) or free to take.
        raise self.retry(countdown=deferred.retry_in + random.uniform(0, 1), max_retries=_deferred_retries()) from None


@app.task(name=EXECUTE, **_RETRY)
def execute(run_id: int, rationale_ids: list[int]) -> int:
    return int(TASKS[EXECUTE](runtime(), run_id, rationale_ids))


@app.task(name=VERIFY, **_RETRY)
def verify(run_id: int, rationale_ids: list[int]) -> int:
    return int(TASKS[VERIFY](runtime(), run_id, rationale_ids))
