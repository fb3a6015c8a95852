"""Supervising distributed runs: finding runs whose work stopped moving, and sending what is missing.

`curation supervise` runs `Supervisor.tick` in a loop beside the workers (one per deployment:
deploy/supervisor/); `curation synth` and `curation runs resume` run the same check for their own
run while they wait, unless a supervisor is running. Nothing else is needed for a run to finish
after a broker restart, a killed worker or a lost message: the process that started it may be gone.

The database says what a run still needs; the broker says which of it is already on its way.
Once a run's counters have not moved for `stall_seconds`, the broker's messages are read
(workers/broker_messages.py) and each is taken for what it is:
- waiting in a queue: the work will come, however long the queue (a healthy run behind a big one
  is left alone, and nothing of it is sent again);
- delivered and held by a live worker (running, reserved, or waiting for its retry time), or a
  generation batch whose lease a live task keeps renewing: in progress, only slow;
- delivered but held by no live worker (its worker was killed; kombu would put it back only after
  the visibility timeout): lost, like a message a broker restart dropped.
While any of a run's messages waits in a queue, nothing of it is sent again (what a killed worker
held is found when the run is quiet again after the queue has drained); otherwise the run's
missing work that no held message asks for is sent (`resume_run` with `QueuedWork`). Sending
twice would be harmless (every task skips what is done), but a queued run resent every few
minutes would multiply its messages, so nothing that can still come is resent.

A run is failed, with the reason, when its work waits in queues from which no worker has taken
anything for `idle_seconds` (no worker consumes them), or when it was resent `max_stalls` times
and still did not move (its tasks fail). A failed run whose work completes after all (a worker
started later) becomes completed; `curation runs resume` revives one whose work was not resent.

Only one supervisor acts at a time: it holds a key in Redis, renewed every tick, and another one
started beside it waits until the key runs out.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
from kombu.exceptions import OperationalError as BrokerOperationalError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from curation.db.session import Database
from curation.models import RunStatus, SynthesisRun
from curation.repositories import leases as lease_repo
from curation.repositories.runs import fail_run
from workers.autoscale.metrics import completed_total_key
from workers.batch_lease import batch_key
from workers.broker_messages import BrokerMessage, held_by_workers, read_messages
from workers.queues import Queue
from workers.renewed_lease import known_dead
from workers.synthesis import EXECUTE, GENERATE, VERIFY, QueuedWork, resume_run
from workers.task_contract import Dispatcher

log = logging.getLogger(__name__)

LOCK_KEY = "curation:supervisor:lock"
# A delivered message younger than this is taken as held without asking the workers: a worker
# that has just taken it may not have registered it yet.
DELIVERY_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class Action:
    """One thing the supervisor found or did, for its log."""

    run_id: int
    kind: str  # queued | in_progress | resent | nothing_missing | failed
    detail: str

    def __str__(self) -> str:
        return f"run #{self.run_id} {self.kind}: {self.detail}"


@dataclass
class _Watch:
    counters: tuple[int, int, int]
    quiet_since: float
    last_look: float | None = None
    resends: int = 0  # resends since the run last moved


@dataclass
class _Snapshot:
    """The broker's messages at one moment, by run: waiting, and delivered and held."""

    waiting: dict[int, list[BrokerMessage]] = field(default_factory=dict)
    held: dict[int, list[BrokerMessage]] = field(default_factory=dict)
    lost: dict[int, list[BrokerMessage]] = field(default_factory=dict)


def _work_of(messages: Iterable[BrokerMessage]) -> QueuedWork:
    batches: set[str] = set()
    rationales: set[int] = set()
    for message in messages:
        ids = message.args[1] if len(message.args) > 1 and isinstance(message.args[1], list) else []
        if message.task == GENERATE:
            batches.add(batch_key(ids))
        elif message.task in (EXECUTE, VERIFY):
            rationales.update(int(i) for i in ids)
    return QueuedWork(frozenset(batches), frozenset(rationales))


class Supervisor:
    def __init__(
        self,
        db: Database,
        app: Any,
        dispatcher: Dispatcher,
        *,
        stall_seconds: float = 120.0,
        max_stalls: int = 5,
        idle_seconds: float | None = None,
        inspect_timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db, self.app, self.dispatcher = db, app, dispatcher
        self.stall_seconds, self.max_stalls = stall_seconds, max_stalls
        self.idle_seconds = idle_seconds if idle_seconds is not None else stall_seconds * max_stalls
        self.inspect_timeout = inspect_timeout
        self.clock = clock
        self.queues = [queue.value for queue in Queue]
        self.redis = redis.Redis.from_url(str(app.conf.broker_url))
        self._watches: dict[int, _Watch] = {}
        self._queue_totals: dict[str, int | None] = {}
        self._queue_active: dict[str, float] = {}

    # --- One look -------------------------------------------------------------------------------

    def tick(self, run_ids: Iterable[int] | None = None) -> list[Action]:
        """Look at the running runs (or these ones) once; what was found and done."""
        now = self.clock()
        running = self._running(run_ids)
        self._observe_queues(now)
        for gone in set(self._watches) - set(running):
            del self._watches[gone]
        quiet: list[int] = []
        for run_id, counters in running.items():
            watch = self._watches.get(run_id)
            if watch is None or watch.counters != counters:
                self._watches[run_id] = _Watch(counters, now)
                continue
            since = watch.quiet_since if watch.last_look is None else watch.last_look
            if now - since >= self.stall_seconds:
                quiet.append(run_id)
        if not quiet:
            return []
        snapshot = self._snapshot(quiet, now)
        return [self._judge(run_id, snapshot, now) for run_id in quiet]

    def _running(self, run_ids: Iterable[int] | None) -> dict[int, tuple[int, int, int]]:
        query = select(
            SynthesisRun.id, SynthesisRun.generations_done, SynthesisRun.generations_failed,
            SynthesisRun.rationales_labelled,
        ).where(SynthesisRun.status == RunStatus.running)  # fmt: skip
        if run_ids is not None:
            query = query.where(SynthesisRun.id.in_(list(run_ids)))
        with self.db.read() as session:
            return {run_id: (done, failed, labelled) for run_id, done, failed, labelled in session.execute(query)}

    def _observe_queues(self, now: float) -> None:
        """A queue is active while its count of completed tasks (kept by the workers) moves."""
        with self.redis.pipeline(transaction=False) as pipe:
            for queue in self.queues:
                pipe.get(completed_total_key(queue))
            totals = [None if value is None else int(value) for value in pipe.execute()]
        for queue, total in zip(self.queues, totals, strict=True):
            if queue not in self._queue_active or self._queue_totals.get(queue) != total:
                self._queue_active[queue] = now
            self._queue_totals[queue] = total

    def _snapshot(self, run_ids: list[int], now: float) -> _Snapshot:
        wanted = set(run_ids)
        snapshot = _Snapshot()
        candidates: list[BrokerMessage] = []
        wall = time.time()
        for message in read_messages(self.redis, self.queues):
            if message.delivered_at is not None:
                candidates.append(message)  # of any run: whether it is held tells if its queue is consumed
            elif message.run_id is not None and message.run_id in wanted:
                snapshot.waiting.setdefault(message.run_id, []).append(message)
        held = held_by_workers(self.app, [m.task_id for m in candidates], self.inspect_timeout)
        if held is None:
            log.info("no worker answered: every delivered message is taken for lost")
            held = set()
        leased = self._leased(run_ids)
        for message in candidates:
            recent = wall - (message.delivered_at or 0.0) < DELIVERY_GRACE_SECONDS
            renewed = message.task == GENERATE and (message.run_id, _batch_of(message)) in leased
            alive = message.task_id in held or recent or renewed
            if alive:
                self._queue_active[message.queue] = now  # a worker is on it
            if message.run_id is not None and message.run_id in wanted:
                (snapshot.held if alive else snapshot.lost).setdefault(message.run_id, []).append(message)
        return snapshot

    def _leased(self, run_ids: list[int]) -> set[tuple[int, str]]:
        """(run, batch key) of batches whose lease a live task renews."""
        found: set[tuple[int, str]] = set()
        with self.db.read() as session:
            for run_id in run_ids:
                for key, holder in lease_repo.live_batches(session, run_id).items():
                    if not known_dead(holder):
                        found.add((run_id, key))
        return found

    # --- Deciding ---------------------------------------------------------------------------------

    def _judge(self, run_id: int, snapshot: _Snapshot, now: float) -> Action:
        watch = self._watches[run_id]
        watch.last_look = now
        held, waiting = snapshot.held.get(run_id, []), snapshot.waiting.get(run_id, [])
        if waiting:
            # Its work will come: nothing is resent (what a killed worker held is found once the
            # queue has drained and the run is quiet again), unless nothing takes from the queue.
            queues = sorted({m.queue for m in waiting})
            idle = min(now - self._queue_active.get(q, now) for q in queues)
            if idle >= self.idle_seconds:
                reason = (
                    f"its work waits in {len(waiting)} messages in {', '.join(queues)}, and no worker has taken "
                    f"anything from {'that queue' if len(queues) == 1 else 'those queues'} for {idle:.0f} s: "
                    f"are workers consuming {', '.join(queues)}?"
                )
                return self._fail(run_id, reason)
            return Action(run_id, "queued", f"{len(waiting)} messages wait in {', '.join(queues)}")
        if not held and watch.resends >= self.max_stalls:
            reason = (
                f"no progress after its missing work was sent again {watch.resends} times, "
                f"{self.stall_seconds:.0f} s apart: its tasks fail (see the workers' logs)"
            )
            return self._fail(run_id, reason)
        # Whatever no live worker holds is lost: a killed worker's, a restarted broker's.
        lost = snapshot.lost.get(run_id, [])
        report = resume_run(self.db, self.dispatcher, run_id, queued=_work_of(held))
        in_progress = f"; {len(held)} of its tasks are held by live workers" if held else ""
        if report.sent:
            if not held:  # a run with work in progress is slow, not stuck
                watch.resends += 1
            detail = (
                f"sent again: {report.generate} generation, {report.execute} execution, {report.verify} "
                f"verification tasks" + (f" ({len(lost)} were delivered to a worker that is gone)" if lost else "")
            )
            return Action(run_id, "resent", detail + in_progress)
        if held:
            return Action(run_id, "in_progress", in_progress.removeprefix("; "))
        if report.leased:
            return Action(run_id, "in_progress", f"{report.leased} batches are leased by live tasks")
        return Action(run_id, "nothing_missing", "the database holds all its work; counters recounted")

    def _fail(self, run_id: int, reason: str) -> Action:
        with self.db.transaction() as session:
            fail_run(session, run_id, reason)
        del self._watches[run_id]
        return Action(run_id, "failed", reason)

    # --- Running forever ----------------------------------------------------------------------------

    def holds_lock(self, holder: str, seconds: float) -> bool:
        """Take or keep the one-supervisor key; False while another supervisor holds it."""
        milliseconds = max(1000, int(seconds * 1000))
        if self.redis.set(LOCK_KEY, holder, nx=True, px=milliseconds):
            return True
        current = self.redis.get(LOCK_KEY)
        if current is not None and (current.decode() if isinstance(current, bytes) else current) == holder:
            self.redis.pexpire(LOCK_KEY, milliseconds)
            return True
        return False

    def tick_safely(self, run_ids: Iterable[int] | None = None) -> list[Action]:
        """`tick`, with the broker or the database down for now taken as nothing to judge."""
        try:
            actions = self.tick(run_ids)
        except (redis.RedisError, BrokerOperationalError, SQLAlchemyError) as error:
            log.warning("supervisor: %s: %s (trying again at the next look)", type(error).__name__, error)
            return []
        for action in actions:
            log.info("%s", action)
        return actions

    def run_forever(
        self, interval: float = 10.0, on_action: Callable[[Action], object] | None = None, ticks: int | None = None
    ) -> None:
        """Look every `interval` seconds (`ticks` times, or for ever) while holding the one-supervisor key."""
        holder = f"{socket.gethostname()}/{uuid.uuid4().hex[:12]}"
        done = 0
        while ticks is None or done < ticks:
            try:
                mine = self.holds_lock(holder, max(interval * 3, 5.0))
            except redis.RedisError as error:
                log.warning("supervisor: the broker is unreachable (%s); trying again in %g s", error, interval)
                mine = False
            for action in self.tick_safely() if mine else []:
                if on_action is not None:
                    on_action(action)
            done += 1
            if ticks is None or done < ticks:
                time.sleep(interval)


def supervisor_running(client: redis.Redis) -> bool:
    """Whether a `curation supervise` process holds the key (so a waiting command only watches)."""
    try:
        return bool(client.exists(LOCK_KEY))
    except redis.RedisError:
        return False


def _batch_of(message: BrokerMessage) -> str:
    ids = message.args[1] if len(message.args) > 1 and isinstance(message.args[1], list) else []
    return batch_key(ids)
