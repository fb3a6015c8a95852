"""What the broker holds: messages waiting in the queues, and messages delivered to a worker and not
yet acknowledged, each decoded into the task and arguments it carries.

Read from kombu's Redis structures (the key names are in workers/autoscale/measure.py): a queue's lists
hold its waiting messages, JSON envelopes whose body is base64-encoded JSON `[args, kwargs,
embed]` (Celery's message protocol 2); the hash `unacked` holds each delivered message (delivery
tag -> `[envelope, exchange, routing key]`) and the sorted set `unacked_index` when it was
delivered. With acks_late a message stays in `unacked` until its task has finished, so a task
that is running, waiting for its retry time, or whose worker was killed is there; which of those
it is, only the workers can say (`held_by_workers`).

The lists are read in pages from the head while workers pop from the tail, so a message can be
read twice (deduplicated by task id) but not missed, except in the instant between a worker's
BRPOP and its write to `unacked`.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from workers.autoscale.measure import KOMBU_PRIORITY_SEPARATOR, KOMBU_UNACKED_KEY, queue_lists

log = logging.getLogger(__name__)

KOMBU_UNACKED_INDEX_KEY = "unacked_index"
PAGE = 1_000


@dataclass(frozen=True)
class BrokerMessage:
    task_id: str
    task: str
    args: tuple[Any, ...]
    queue: str
    delivered_at: float | None  # Unix time of delivery (the worker's clock); None: waiting in its queue

    @property
    def run_id(self) -> int | None:
        first = self.args[0] if self.args else None
        return first if isinstance(first, int) else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def decode(envelope: Any, queue: str, delivered_at: float | None) -> BrokerMessage | None:
    """A kombu envelope as a BrokerMessage; None for anything that is not a Celery task message."""
    if not isinstance(envelope, dict):
        return None
    headers = envelope.get("headers") or {}
    task, task_id = headers.get("task"), headers.get("id")
    if not isinstance(task, str) or not isinstance(task_id, str):
        return None
    try:
        body: Any = envelope.get("body", "")
        if (envelope.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        payload = json.loads(body)
    except (ValueError, TypeError):
        return None
    args = payload[0] if isinstance(payload, list) and payload else (payload or {}).get("args", [])
    if not isinstance(args, list):
        return None
    return BrokerMessage(task_id, task, tuple(args), queue, delivered_at)


def _waiting(client: redis.Redis, queue: str) -> Iterator[BrokerMessage]:
    for list_name in queue_lists(queue):
        start = 0
        while True:
            page = client.lrange(list_name, start, start + PAGE - 1)
            for raw in page:
                try:
                    message = decode(json.loads(raw), queue, None)
                except ValueError:
                    message = None
                if message is not None:
                    yield message
            if len(page) < PAGE:
                break
            start += PAGE


def _delivered(client: redis.Redis, queues: set[str]) -> Iterator[BrokerMessage]:
    delivered_at = {_text(tag): float(score) for tag, score in client.zscan_iter(KOMBU_UNACKED_INDEX_KEY)}
    for tag, payload in client.hscan_iter(KOMBU_UNACKED_KEY, count=PAGE):
        try:
            envelope, _exchange, routing_key = json.loads(payload)
        except (ValueError, TypeError):
            continue
        queue = str(routing_key).split(KOMBU_PRIORITY_SEPARATOR)[0]
        if queue in queues:
            message = decode(envelope, queue, delivered_at.get(_text(tag), 0.0))
            if message is not None:
                yield message


def read_messages(client: redis.Redis, queues: Iterable[str]) -> list[BrokerMessage]:
    """Every task message in these queues: waiting ones first, then delivered ones; one per task id
    (a message found waiting and then delivered, while the lists were read, counts as delivered)."""
    names = list(queues)
    found: dict[str, BrokerMessage] = {}
    for queue in names:
        for message in _waiting(client, queue):
            found[message.task_id] = message
    for message in _delivered(client, set(names)):
        found[message.task_id] = message
    return list(found.values())


def held_by_workers(app: Any, task_ids: Iterable[str], timeout: float = 1.0) -> set[str] | None:
    """Of these delivered tasks, those a live worker says it holds (running, reserved, or waiting
    for its retry time); None when no worker answered at all."""
    wanted = sorted(set(task_ids))
    if not wanted:
        return set()
    inspector = app.control.inspect(timeout=timeout)
    known = inspector.query_task(*wanted)  # running and reserved requests
    scheduled = inspector.scheduled()  # requests waiting for their ETA (a retry's countdown)
    if known is None and scheduled is None:
        return None
    held: set[str] = set()
    for reply in (known or {}).values():
        held.update(reply)
    for entries in (scheduled or {}).values():
        held.update(str(entry.get("request", {}).get("id")) for entry in entries)
    return held & set(wanted)
