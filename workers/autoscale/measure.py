"""Queue measurement: per queue, the depth (messages waiting in the Celery lists plus messages
that workers hold unacknowledged) and the completion rates the tasks recorded (workers/autoscale/
metrics.py), as a `QueueObservation`.

Keys read and never written: the queue's lists (kombu's names, see `queue_lists`), kombu's
``unacked`` hash, and the completion counters.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis

from workers.autoscale.metrics import BUCKET_SECONDS, COMPLETIONS_TTL_SECONDS, completed_total_key, completions_key

RATE_WINDOW_SECONDS = 60.0

# kombu's Redis transport (kombu/transport/redis.py, class Channel): a queue Q is the list Q plus,
# for messages sent with a priority, the lists Q\x06\x163, Q\x06\x166 and Q\x06\x169; a delivered
# message stays in the hash `unacked` (delivery tag → JSON [message, exchange, routing_key]) until
# the worker acknowledges it, which with acks_late is after the task has finished.
KOMBU_UNACKED_KEY = "unacked"
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)


@dataclass(frozen=True)
class Throughput:
    """Completions over a recent window.

    tasks_per_second: the whole queue. per_worker: tasks per second of one worker while it was
    working, None when nothing completed in the window. workers: how many distinct workers
    completed something in the window.
    """

    tasks_per_second: float
    per_worker: float | None
    workers: int


def _bucket_range(now: float, window_seconds: float, bucket_seconds: float) -> range:
    last = int(now // bucket_seconds)
    return range(last - math.ceil(window_seconds / bucket_seconds) + 1, last + 1)


def estimate_throughput(
    buckets: Mapping[int, Mapping[str, int]],
    now: float,
    window_seconds: float = RATE_WINDOW_SECONDS,
    bucket_seconds: float = BUCKET_SECONDS,
) -> Throughput:
    """Rates from per-bucket, per-worker completion counts (bucket number → worker → tasks).

    The per-worker rate is the window's completions divided by the seconds each worker was seen
    working: from the start of the first bucket it completed a task in to the end of its last one.
    Dividing by the whole window instead would read low for a worker that started (or stopped)
    halfway, and a low rate makes the policy start workers it then has to stop. Bias left: a
    worker that completes less than one task per bucket (a slow task at concurrency 1) is seen
    working for less time than it was, so its rate reads high.
    """
    span = _bucket_range(now, window_seconds, bucket_seconds)
    total = 0
    first_seen: dict[str, int] = {}
    last_seen: dict[str, int] = {}
    for index in span:
        for worker, count in buckets.get(index, {}).items():
            if count > 0:
                total += count
                first_seen.setdefault(worker, index)
                last_seen[worker] = index
    if not first_seen:
        return Throughput(0.0, None, 0)
    elapsed = max(now - span.start * bucket_seconds, bucket_seconds)
    worker_seconds = sum(
        max(min(now, (last_seen[worker] + 1) * bucket_seconds) - first * bucket_seconds, bucket_seconds)
        for worker, first in first_seen.items()
    )
    return Throughput(total / elapsed, total / worker_seconds, len(first_seen))


@dataclass(frozen=True)
class QueueObservation:
    """What the policy knows about one queue at one moment.

    waiting: messages in the queue's Redis lists, not yet delivered to any worker.
    unacked: messages delivered to a worker and not yet acknowledged (running, or prefetched).
    workers: workers serving the queue now, including ones still starting.
    worker_rate: measured tasks per second of one worker; None when nothing was measured.
    completion_rate: tasks per second of the whole queue over the window (shown, not used).
    completed_total: the queue's counter of completed tasks; None when it does not exist.
    """

    queue: str
    waiting: int
    unacked: int
    workers: int
    worker_rate: float | None = None
    completion_rate: float = 0.0
    completed_total: int | None = None

    @property
    def backlog(self) -> int:
        return self.waiting + self.unacked


def queue_lists(queue: str) -> list[str]:
    """The Redis lists kombu keeps a queue in, one per priority step (as kombu's `_size` counts them)."""
    return [queue if step == 0 else f"{queue}{KOMBU_PRIORITY_SEPARATOR}{step}" for step in KOMBU_PRIORITY_STEPS]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def count_unacked(client: redis.Redis, queues: Iterable[str]) -> dict[str, int]:
    """Delivered, unacknowledged messages per queue, from kombu's `unacked` hash.

    Each entry is JSON [message, exchange, routing_key]; our routing keys are the queue names.
    HSCAN instead of HGETALL so that a large hash is read in pieces without blocking Redis; HSCAN
    may return an entry twice, hence the sets of delivery tags.
    """
    tags: dict[str, set[bytes | str]] = {queue: set() for queue in queues}
    for tag, payload in client.hscan_iter(KOMBU_UNACKED_KEY, count=1000):
        try:
            routing_key = json.loads(payload)[2]
        except (ValueError, TypeError, IndexError, KeyError):
            continue  # not written by kombu; one odd entry must not stop the count
        if isinstance(routing_key, str) and routing_key in tags:
            tags[routing_key].add(tag)
    return {queue: len(found) for queue, found in tags.items()}


def measure(
    client: redis.Redis,
    queues: Iterable[str],
    *,
    current_workers: Mapping[str, int] | None = None,
    now: float | None = None,
    window_seconds: float = RATE_WINDOW_SECONDS,
) -> dict[str, QueueObservation]:
    """Observe each queue: depth, unacknowledged messages and rates, in two round trips plus HSCAN.

    current_workers: how many workers serve each queue (the local pool's count). Without it, the
    number of workers that completed a task within the window stands in; workers that are idle or
    still starting are then not counted.
    """
    if not 0 < window_seconds <= COMPLETIONS_TTL_SECONDS - BUCKET_SECONDS:
        raise ValueError(f"window_seconds must be in (0, {COMPLETIONS_TTL_SECONDS - BUCKET_SECONDS}]")
    moment = time.time() if now is None else now
    names = list(queues)
    span = _bucket_range(moment, window_seconds, BUCKET_SECONDS)
    with client.pipeline(transaction=False) as pipe:
        for queue in names:
            for list_name in queue_lists(queue):
                pipe.llen(list_name)
            for index in span:
                pipe.hgetall(completions_key(queue, index))
            pipe.get(completed_total_key(queue))
        replies = iter(pipe.execute())
    unacked = count_unacked(client, names)
    observations = {}
    for queue in names:
        waiting = sum(int(next(replies)) for _ in KOMBU_PRIORITY_STEPS)
        buckets = {index: {_text(worker): int(count) for worker, count in next(replies).items()} for index in span}
        total = next(replies)
        throughput = estimate_throughput(buckets, moment, window_seconds)
        workers = current_workers[queue] if current_workers is not None else throughput.workers
        observations[queue] = QueueObservation(
            queue=queue,
            waiting=waiting,
            unacked=unacked[queue],
            workers=workers,
            worker_rate=throughput.per_worker,
            completion_rate=throughput.tasks_per_second,
            completed_total=None if total is None else int(total),
        )
    return observations
