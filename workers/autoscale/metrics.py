"""Per-task metrics: every task, when it finishes, counts itself in Redis (`record_completed`).

Keys written (all under ``curation:autoscale:``, all expiring):
- ``curation:autoscale:completed:<queue>:<bucket>``: a hash worker → tasks completed in the
  5-second bucket number ``<bucket>`` (Unix time // 5); expires `COMPLETIONS_TTL_SECONDS` after
  its last write.
- ``curation:autoscale:completed_total:<queue>``: a counter of every task completed, from which
  the policy tells arrivals from completions; expires a day after its last write (the policy
  notices a counter that started again from zero).
Buckets go by each worker's clock, so hosts need synchronised clocks (NTP): a skew of seconds
moves completions between buckets, not in or out of a one-minute window.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time

import redis

logger = logging.getLogger(__name__)

KEY_PREFIX = "curation:autoscale"
BUCKET_SECONDS = 5
# Long enough for any window `measure` accepts; short enough that a queue nobody works on leaves
# nothing behind within minutes.
COMPLETIONS_TTL_SECONDS = 600
TOTAL_TTL_SECONDS = 86_400

WORKER_ID_ENV = "CURATION_WORKER_ID"


def completions_key(queue: str, bucket: int) -> str:
    return f"{KEY_PREFIX}:completed:{queue}:{bucket}"


def completed_total_key(queue: str) -> str:
    return f"{KEY_PREFIX}:completed_total:{queue}"


def worker_identity() -> str:
    """The name a finished task is counted under: one per worker process, the unit that is scaled.

    CURATION_WORKER_ID when it is set (LocalWorkerPool sets it for the processes it starts; a
    Kubernetes Deployment can set it to the pod name); otherwise the Celery node name of the task
    being run, which is one per worker even under the prefork pool (whose children each have their
    own pid); otherwise host:pid.
    """
    explicit = os.environ.get(WORKER_ID_ENV)
    if explicit:
        return explicit
    celery = sys.modules.get("celery")  # only a process that runs Celery tasks has it loaded
    if celery is not None:
        request = getattr(getattr(celery, "current_task", None), "request", None)
        hostname = getattr(request, "hostname", None)
        if isinstance(hostname, str) and hostname:
            return hostname
    return f"{socket.gethostname()}:{os.getpid()}"


def record_completed(
    client: redis.Redis,
    queue: str,
    tasks: int = 1,
    now: float | None = None,
    *,
    worker: str | None = None,
) -> None:
    """Count `tasks` finished tasks of `queue` for this worker (default `worker_identity()`).

    One round trip (a pipeline of HINCRBY, INCRBY and two EXPIREs), so it can run after every task.
    A Redis error is logged, not raised: the task's own work is already stored, and failing it over
    a metric would only get it retried.
    """
    if tasks < 0:
        raise ValueError(f"tasks must be >= 0, got {tasks}")
    if tasks == 0:
        return
    moment = time.time() if now is None else now
    key = completions_key(queue, int(moment // BUCKET_SECONDS))
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.hincrby(key, worker or worker_identity(), tasks)
            pipe.expire(key, COMPLETIONS_TTL_SECONDS)
            pipe.incrby(completed_total_key(queue), tasks)
            pipe.expire(completed_total_key(queue), TOTAL_TTL_SECONDS)
            pipe.execute()
    except redis.RedisError as error:
        logger.warning("could not record %d completed %s task(s): %s", tasks, queue, error)
