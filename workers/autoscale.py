"""Autoscaling: how many workers each queue needs to finish its backlog within a target time.

The parts, each usable on its own:

- `record_completed` is called by every task when it finishes: it adds to a per-queue counter in
  Redis, per 5-second bucket and per worker, so completion rates and the number of workers doing
  the work can be read back (`estimate_throughput`).
- `measure` reads, per queue, the depth (messages waiting in the Celery list plus messages that
  workers hold unacknowledged) and the measured rates, as a `QueueObservation`.
- `decide` is the policy: a pure function of an observation, a `ScalingPolicy` and what it
  remembered from its previous call (`QueueState`). It returns a `Decision`: the worker count and a
  one-line reason.
- `LocalWorkerPool` starts and stops `curation worker` processes on this machine to follow the
  decisions; `Autoscaler` runs measure → decide → apply once per `step`.
- `keda_manifests` (and `write_manifests`) express the same sizing for Kubernetes: one KEDA
  ScaledObject per queue (see deploy/keda/README.md for what KEDA can and cannot see).

Redis keys written here (all under ``curation:autoscale:``, all expiring):
- ``curation:autoscale:completed:<queue>:<bucket>``: a hash worker → tasks completed in the
  5-second bucket number ``<bucket>`` (Unix time // 5); expires `COMPLETIONS_TTL_SECONDS` after
  its last write.
- ``curation:autoscale:completed_total:<queue>``: a counter of every task completed, from which
  the policy tells arrivals from completions; expires a day after its last write (the policy
  notices a counter that started again from zero).
Keys read and never written: the queue's lists (kombu's names, see `queue_lists`) and kombu's
``unacked`` hash. Buckets go by each worker's clock, so hosts need synchronised clocks (NTP): a
skew of seconds moves completions between buckets, not in or out of a one-minute window.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import yaml

from workers.queues import Queue

logger = logging.getLogger(__name__)

KEY_PREFIX = "curation:autoscale"
BUCKET_SECONDS = 5
RATE_WINDOW_SECONDS = 60.0
# Long enough for any window `measure` accepts; short enough that a queue nobody works on leaves
# nothing behind within minutes.
COMPLETIONS_TTL_SECONDS = 600
TOTAL_TTL_SECONDS = 86_400

# kombu's Redis transport (kombu/transport/redis.py, class Channel): a queue Q is the list Q plus,
# for messages sent with a priority, the lists Q\x06\x163, Q\x06\x166 and Q\x06\x169; a delivered
# message stays in the hash `unacked` (delivery tag → JSON [message, exchange, routing_key]) until
# the worker acknowledges it, which with acks_late is after the task has finished.
KOMBU_UNACKED_KEY = "unacked"
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)

WORKER_ID_ENV = "CURATION_WORKER_ID"

# Tasks per second one worker (one `curation worker` process at its default concurrency) is assumed
# to complete until a rate has been measured. Deliberately low: too many workers for the first
# minute cost less than a first minute spent too slow, and a measured rate replaces these as soon
# as tasks complete.
DEFAULT_WORKER_RATES: dict[str, float] = {
    Queue.generation: 0.5,  # waits on the teacher
    Queue.execution: 10.0,  # sandboxed programs, a few ms to a few s each
    Queue.verification: 20.0,  # answer checks and label inserts
    Queue.training: 1 / 3600,  # a fine-tuning run takes its GPU worker for an hour or so
}
FALLBACK_WORKER_RATE = 1.0


# --- Recording completions -------------------------------------------------------------------------


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


# --- Measuring -------------------------------------------------------------------------------------


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


# --- The policy --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalingPolicy:
    """How one queue is scaled.

    target_seconds: work queued should be finished within this long (how deadlines are set and
        moved is in `decide`).
    min_workers, max_workers: the range the worker count stays in. Zero is reached only when the
        queue is empty (waiting and unacknowledged), no work is arriving, and min_workers is 0.
    default_worker_rate: tasks/s one worker is assumed to do until a rate has been measured.
    startup_seconds: how long a new worker takes to start taking tasks; work planned for a new
        worker starts this much later than for a running one.
    scale_down_delay_seconds: a lower count is applied only once every recommendation of this
        long has been at or below it (scale-up is immediate). This is the cooldown that stops
        the count from flapping on a noisy rate, and what keeps workers for a while after a drain.
    min_work_seconds: a new worker is planned to work at least this long, however close (or
        past) a deadline is; it bounds how hard the policy pushes when it is behind.
    """

    target_seconds: float = 3600.0
    min_workers: int = 0
    max_workers: int = 8
    default_worker_rate: float = FALLBACK_WORKER_RATE
    startup_seconds: float = 60.0
    scale_down_delay_seconds: float = 300.0
    min_work_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.target_seconds <= 0:
            raise ValueError(f"target_seconds must be positive, got {self.target_seconds}")
        if not 0 <= self.min_workers <= self.max_workers or self.max_workers < 1:
            raise ValueError(f"need 0 <= min_workers <= max_workers and max_workers >= 1, got {self}")
        if self.default_worker_rate <= 0:
            raise ValueError(f"default_worker_rate must be positive, got {self.default_worker_rate}")
        if self.startup_seconds < 0 or self.scale_down_delay_seconds < 0 or self.min_work_seconds <= 0:
            raise ValueError(f"invalid delays in {self}")

    @property
    def arrival_window_seconds(self) -> float:
        """How long arrivals must go on before they count as a stream the workers must keep pace
        with. Shorter ones (a producer enqueueing a million tasks in two minutes) are a burst: the
        backlog and its deadline take care of them, and treating their rate as lasting would start
        max_workers for nothing."""
        return max(RATE_WINDOW_SECONDS, self.target_seconds / 10)


@dataclass(frozen=True)
class QueueState:
    """What `decide` remembers about a queue from one call to the next. Start from QueueState().

    deadline: when the `due` tasks (the backlog there was when it was set, minus what has been
        completed since) must be finished; None while the queue is empty.
    last_backlog, last_completed: the backlog and the completions counter at the previous call;
        with this call's they give the tasks that arrived in between.
    arrival_rates: (end time, tasks/s) of each interval within the arrival window;
        arrivals_since: since when intervals have been measured without a gap.
    worker_rate: the last measured per-worker rate, used while nothing is being measured.
    recommendations: (time, count) recommendations within the scale-down delay, only those higher
        than every later one (all a sliding-window maximum needs). A fresh state has none, so
        nothing holds the current count up: a first call answers from the present alone.
    decided_at: time of the previous call; None before the first.
    """

    deadline: float | None = None
    due: int = 0
    last_backlog: int = 0
    last_completed: int | None = None
    arrival_rates: tuple[tuple[float, float], ...] = ()
    arrivals_since: float | None = None
    worker_rate: float | None = None
    recommendations: tuple[tuple[float, int], ...] = ()
    decided_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["arrival_rates"] = [list(pair) for pair in self.arrival_rates]
        values["recommendations"] = [list(pair) for pair in self.recommendations]
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> QueueState:
        return cls(
            deadline=values.get("deadline"),
            due=int(values.get("due", 0)),
            last_backlog=int(values.get("last_backlog", 0)),
            last_completed=values.get("last_completed"),
            arrival_rates=tuple((float(t), float(r)) for t, r in values.get("arrival_rates", ())),
            arrivals_since=values.get("arrivals_since"),
            worker_rate=values.get("worker_rate"),
            recommendations=tuple((float(t), int(n)) for t, n in values.get("recommendations", ())),
            decided_at=values.get("decided_at"),
        )


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one queue.

    desired: the worker count to run now. needed: the workers the target needs (may exceed the
    max). target_met: whether `desired` workers meet it. arrival_rate: the sustained arrivals in
    tasks/s (0 when none, or not yet known). eta_seconds: how long `desired` workers take to finish
    the tasks queued now (0 for an empty queue). state: pass it to the next call for this queue.
    """

    observation: QueueObservation
    desired: int
    needed: int
    reason: str
    target_met: bool
    eta_seconds: float
    worker_rate: float
    rate_source: str
    arrival_rate: float
    state: QueueState

    @property
    def queue(self) -> str:
        return self.observation.queue


def _ceil(value: float) -> int:
    # 56.99999999 from float division is 57 workers, not 58.
    return math.ceil(value - 1e-9)


def _workers_needed(tasks: float, rate: float, horizon: float, startup: float, current: int) -> int:
    """Fewest workers that finish `tasks` within `horizon` seconds, the `current` ones working
    all of it and new ones only after `startup` (horizon > startup)."""
    if current * rate * horizon >= tasks:
        return _ceil(tasks / (rate * horizon))
    return current + _ceil((tasks - current * rate * horizon) / (rate * (horizon - startup)))


def _drain_seconds(tasks: int, rate: float, current: int, workers: int, startup: float) -> float:
    """Seconds `workers` workers take to finish `tasks` when `current` of them are running now."""
    if tasks == 0:
        return 0.0
    if workers == 0:
        return math.inf
    running = min(current, workers)
    if running and (running == workers or tasks <= running * rate * startup):
        return tasks / (running * rate)
    return startup + (tasks - running * rate * startup) / (workers * rate)


def _duration(seconds: float) -> str:
    if math.isinf(seconds):
        return "never"
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _completed_since(observation: QueueObservation, state: QueueState) -> int | None:
    """Tasks completed since the previous call; None when unknown (no counter, or it expired)."""
    if observation.completed_total is None or state.last_completed is None:
        return None
    if observation.completed_total < state.last_completed:
        return None
    return observation.completed_total - state.last_completed


def _arrivals(
    observation: QueueObservation, policy: ScalingPolicy, state: QueueState, completed: int | None, now: float
) -> tuple[float, tuple[tuple[float, float], ...], float | None]:
    """The sustained arrival rate, and the arrival state to keep.

    Arrivals in an interval are the backlog's growth plus the completions. The sustained rate is
    the lowest interval rate within the arrival window, and 0 until a whole window of at least
    three intervals has been measured: a burst raises one interval's rate, not the lowest, and a
    stream raises them all. Being a lower bound, it leaves some arrivals to the backlog term,
    which sees them next.
    """
    if completed is None or state.decided_at is None or now <= state.decided_at:
        return 0.0, (), None
    rate = max(0.0, (observation.backlog - state.last_backlog + completed) / (now - state.decided_at))
    window_start = now - policy.arrival_window_seconds
    rates = (*((t, r) for t, r in state.arrival_rates if t > window_start), (now, rate))
    since = state.arrivals_since if state.arrivals_since is not None else state.decided_at
    covered = since <= window_start and len(rates) >= 3
    return (min(r for _, r in rates) if covered else 0.0), rates, since


def decide(observation: QueueObservation, policy: ScalingPolicy, state: QueueState, now: float) -> Decision:
    """How many workers `observation.queue` should have now. Pure: no I/O, no clock.

    Two things must fit in the workers' capacity (at the per-worker rate: measured, else last
    measured, else the policy's default; new workers counting only after their startup time):

    - the due tasks by their deadline. When work appears the deadline is now + target and every
      queued task is due; the deadline then stays put while those tasks are worked off, so a burst
      is drained by its own deadline (a deadline of now + target recomputed at every call would
      shrink the worker count as the backlog falls, and drain the end of a burst ever more
      slowly). Once they are done, what is queued then becomes due, by now + target.
    - everything queued now, plus what keeps arriving (the sustained arrival rate), within the
      target: a stream of work needs workers even when its queue is empty at the moment.

    Stability: a higher count is applied at once; a lower one only when no recommendation in the
    last `scale_down_delay_seconds` was higher (HPA-style stabilisation), so the count changes
    direction rarely and the workers stay that long after the queue empties. A queue with work
    keeps at least one worker; zero needs an empty queue, no arrivals and min_workers 0. When even
    max_workers cannot meet the target, the answer is max_workers and the reason says so.
    """
    backlog = observation.backlog
    current = observation.workers
    if observation.worker_rate is not None and observation.worker_rate > 0:
        rate, source = observation.worker_rate, "measured"
    elif state.worker_rate is not None:
        rate, source = state.worker_rate, "last measured"
    else:
        rate, source = policy.default_worker_rate, "assumed"
    completed = _completed_since(observation, state)
    arrival_rate, arrival_rates, arrivals_since = _arrivals(observation, policy, state, completed, now)

    # The due tasks are the oldest, at the head of the queue: completions come off them first,
    # and there cannot be more of them than there are tasks queued.
    deadline, due = state.deadline, min(state.due - (completed or 0), backlog)
    if backlog == 0:
        deadline, due = None, 0
    elif deadline is None or due <= 0:
        deadline, due = now + policy.target_seconds, backlog

    shortest_horizon = policy.startup_seconds + policy.min_work_seconds
    target_horizon = max(policy.target_seconds, shortest_horizon)
    needed = _workers_needed(
        backlog + arrival_rate * target_horizon, rate, target_horizon, policy.startup_seconds, current
    )
    remaining = math.inf if deadline is None else deadline - now
    if deadline is not None:
        due_horizon = max(remaining, shortest_horizon)
        needed = max(needed, _workers_needed(due, rate, due_horizon, policy.startup_seconds, current))
    floor = max(policy.min_workers, 1 if backlog else 0)
    recommended = min(max(needed, floor), policy.max_workers)

    recent = [(t, n) for t, n in state.recommendations if t > now - policy.scale_down_delay_seconds]
    if recommended >= current:
        desired = recommended
    else:
        desired = max(recommended, min(current, max((n for _, n in recent), default=0)))
    desired = min(max(desired, floor), policy.max_workers)

    eta = _drain_seconds(backlog, rate, current, desired, policy.startup_seconds)
    due_eta = _drain_seconds(due, rate, current, desired, policy.startup_seconds)
    target_met = desired >= needed and due_eta <= remaining
    if backlog == 0 and arrival_rate == 0:
        load = "queue empty"
    else:
        when = f"in {_duration(remaining)}" if remaining >= 0 else f"{_duration(remaining)} ago"
        load = f"{backlog:,} queued"
        if due:
            load += f", due {when}" if due == backlog else f" ({due:,} due {when})"
        if arrival_rate:
            load += f", {arrival_rate:.3g}/s arriving"
    rate_text = f"{rate:.3g}/s per worker ({source})"
    if backlog == 0 and arrival_rate == 0:
        reason = load
    elif target_met:
        reason = f"{needed} needed for {load}; {rate_text}"
    elif needed > policy.max_workers:
        reason = (
            f"target cannot be met: {needed} needed for {load}, max {policy.max_workers}; "
            f"{desired} finish the queue in {_duration(eta)}; {rate_text}"
        )
    else:  # behind: the deadline is too close for new workers to make it
        reason = f"target cannot be met: {load}; {desired} finish the queue in {_duration(eta)}; {rate_text}"
    if needed < policy.min_workers:
        reason += f"; min {policy.min_workers}"
    if desired > recommended:
        release = max(t for t, n in recent if n > recommended) + policy.scale_down_delay_seconds
        reason += f"; keeping {desired}, down to {recommended} in {_duration(release - now)} if the load stays"

    new_state = QueueState(
        deadline=deadline,
        due=due,
        last_backlog=backlog,
        last_completed=observation.completed_total,
        arrival_rates=arrival_rates,
        arrivals_since=arrivals_since,
        worker_rate=rate if source == "measured" else state.worker_rate,
        recommendations=(*((t, n) for t, n in recent if n > recommended), (now, recommended)),
        decided_at=now,
    )
    return Decision(
        observation=observation,
        desired=desired,
        needed=needed,
        reason=reason,
        target_met=target_met,
        eta_seconds=eta,
        worker_rate=rate,
        rate_source=source,
        arrival_rate=arrival_rate,
        state=new_state,
    )


def default_policies(
    queues: Iterable[str],
    *,
    target_seconds: float = 3600.0,
    min_workers: int = 0,
    max_workers: int = 8,
    default_rates: Mapping[str, float] | None = None,
    **options: float,
) -> dict[str, ScalingPolicy]:
    """One policy per queue, alike but for the assumed rate (`DEFAULT_WORKER_RATES` unless given)."""
    rates = {**DEFAULT_WORKER_RATES, **(default_rates or {})}
    return {
        str(queue): ScalingPolicy(  # str(): a Queue member is a str, but YAML and JSON want the plain one
            target_seconds=target_seconds,
            min_workers=min_workers,
            max_workers=max_workers,
            default_worker_rate=rates.get(queue, FALLBACK_WORKER_RATE),
            **options,
        )
        for queue in queues
    }


# --- Local worker processes ----------------------------------------------------------------------

WorkerCommand = Callable[[str, int], Sequence[str]]


def curation_worker_command(queue: str, concurrency: int) -> list[str]:
    """argv of one worker process serving `queue`."""
    return [sys.executable, "-m", "curation.cli.app", "worker", "--queues", queue, "--concurrency", str(concurrency)]


def process_start_ticks(pid: int) -> int | None:
    """When the kernel started process `pid` (clock ticks since boot), or None if it is not running.

    A pid alone can be reused by an unrelated process once ours has exited; pid plus start time
    cannot. A zombie (exited, not yet reaped) counts as not running. Linux only (/proc).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces and parentheses itself.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of proc(5), starttime


@dataclass
class ManagedWorker:
    """A worker process this pool started (and so may stop).

    start_ticks: its kernel start time, checked before every signal so that a reused pid is never
    signalled. stop_deadline: set once SIGTERM was sent; past it the process group gets SIGKILL.
    process: the Popen handle while the process is a child of this one (None once adopted from a
    state file written by an earlier run).
    """

    queue: str
    worker_id: str
    pid: int
    start_ticks: int
    started_at: float
    stop_deadline: float | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    killed: bool = field(default=False, compare=False)

    @property
    def stopping(self) -> bool:
        return self.stop_deadline is not None

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return process_start_ticks(self.pid) == self.start_ticks

    def as_record(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "worker_id": self.worker_id,
            "pid": self.pid,
            "start_ticks": self.start_ticks,
            "started_at": self.started_at,
            "stop_deadline": self.stop_deadline,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ManagedWorker:
        return cls(
            queue=str(record["queue"]),
            worker_id=str(record["worker_id"]),
            pid=int(record["pid"]),
            start_ticks=int(record["start_ticks"]),
            started_at=float(record["started_at"]),
            stop_deadline=record.get("stop_deadline"),
        )


class LocalWorkerPool:
    """Worker processes on this machine, per queue. Only ever signals processes it started.

    Each worker gets its own session (process group): Ctrl-C at the terminal then reaches only the
    autoscaler, which stops the workers in order (SIGTERM: Celery's warm shutdown finishes the
    running tasks), and a SIGKILL after `stop_timeout` takes the worker's pool children with it.
    Stopping does not block: `scale` sends SIGTERM and `reap` (called every step) escalates.
    """

    def __init__(
        self,
        command: WorkerCommand = curation_worker_command,
        *,
        concurrency: int = 1,
        env: Mapping[str, str] | None = None,
        stop_timeout: float = 60.0,
        log_dir: Path | None = None,
        adopt: Iterable[ManagedWorker] = (),
    ) -> None:
        """env: variables set for the workers on top of this process's environment.
        log_dir: each worker's stdout and stderr go to <log_dir>/<worker id>.log (default: ours).
        adopt: workers started by an earlier run (from its state file); the first `reap` drops
        those no longer running, or whose pid now belongs to another process."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.command = command
        self.concurrency = concurrency
        self.env = dict(env or {})
        self.stop_timeout = stop_timeout
        self.log_dir = log_dir
        self._workers = list(adopt)

    @property
    def workers(self) -> list[ManagedWorker]:
        return list(self._workers)

    def running(self, queue: str) -> int:
        """Workers serving `queue`, not counting those being stopped."""
        return sum(1 for worker in self._workers if worker.queue == queue and not worker.stopping)

    def counts(self, queues: Iterable[str]) -> dict[str, int]:
        return {queue: self.running(queue) for queue in queues}

    def scale(self, queue: str, count: int, now: float | None = None) -> list[str]:
        """Start or stop workers of `queue` until `count` are running; returns what was done."""
        moment = time.time() if now is None else now
        active = [worker for worker in self._workers if worker.queue == queue and not worker.stopping]
        actions = []
        for _ in range(count - len(active)):
            worker = self._start(queue, moment)
            actions.append(f"started {worker.worker_id} (pid {worker.pid})")
        # Newest first: a new worker may still be starting up and has the least work in hand.
        for worker in sorted(active, key=lambda w: w.started_at, reverse=True)[: max(0, len(active) - count)]:
            worker.stop_deadline = moment + self.stop_timeout
            self._signal(worker, signal.SIGTERM)
            actions.append(f"stopping {worker.worker_id} (pid {worker.pid})")
        return actions

    def reap(self, now: float | None = None) -> list[str]:
        """Forget workers that have exited; SIGKILL those that outlived their stop deadline."""
        moment = time.time() if now is None else now
        actions = []
        for worker in list(self._workers):
            if not worker.alive():
                self._workers.remove(worker)
                if worker.stopping:
                    how = "stopped"
                elif worker.process is not None:
                    how = f"exited unexpectedly (code {worker.process.returncode})"
                else:
                    how = "is gone (it was started by an earlier run)"
                actions.append(f"{worker.worker_id} {how}")
            elif worker.stop_deadline is not None and moment >= worker.stop_deadline and not worker.killed:
                self._signal(worker, signal.SIGKILL, group=True)
                worker.killed = True
                actions.append(f"killed {worker.worker_id} (pid {worker.pid}) after {self.stop_timeout:g}s")
        return actions

    def stop_all(self, timeout: float | None = None) -> list[str]:
        """Stop every worker and wait: SIGTERM, then SIGKILL after `timeout` (default stop_timeout)."""
        grace = self.stop_timeout if timeout is None else timeout
        moment = time.time()
        for worker in self._workers:
            if not worker.stopping:
                worker.stop_deadline = moment + grace
                self._signal(worker, signal.SIGTERM)
        actions = []
        give_up = moment + grace + 10.0  # SIGKILL'd processes vanish at once; this is only a bound
        while self._workers and time.time() < give_up:
            actions += self.reap()
            if self._workers:
                time.sleep(0.05)
        return actions

    def _start(self, queue: str, now: float) -> ManagedWorker:
        worker_id = f"{queue}-{secrets.token_hex(4)}@{socket.gethostname()}"
        argv = list(self.command(queue, self.concurrency))
        env = {**os.environ, **self.env, WORKER_ID_ENV: worker_id}
        with contextlib.ExitStack() as stack:
            log: IO[bytes] | None = None
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                log = stack.enter_context((self.log_dir / f"{worker_id}.log").open("ab"))
            process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT if log is not None else None,
                start_new_session=True,
            )
        ticks = process_start_ticks(process.pid)
        worker = ManagedWorker(queue, worker_id, process.pid, ticks or 0, now, process=process)
        self._workers.append(worker)
        return worker

    @staticmethod
    def _signal(worker: ManagedWorker, signum: int, *, group: bool = False) -> None:
        with contextlib.ExitStack() as stack:
            if worker.process is None and hasattr(os, "pidfd_open"):
                # Not our child, so nothing reserves its pid: an open pidfd does, from the identity
                # check below until the signal has been sent.
                try:
                    stack.callback(os.close, os.pidfd_open(worker.pid))
                except ProcessLookupError:
                    return
            if not worker.alive():  # exited: its pid may belong to someone else by now
                return
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(worker.pid, signum)  # its own session: the group is the worker and its children
                else:
                    os.kill(worker.pid, signum)


# --- Persistence between runs ----------------------------------------------------------------------

STATE_VERSION = 1


def load_state(path: Path) -> tuple[dict[str, QueueState], list[ManagedWorker]]:
    """The policy states and the workers a previous run left behind (none if there is no file)."""
    if not path.exists():
        return {}, []
    data = json.loads(path.read_text())
    if data.get("version") != STATE_VERSION:
        raise ValueError(f"{path}: unknown autoscaler state version {data.get('version')!r}")
    states = {queue: QueueState.from_dict(values) for queue, values in data.get("queues", {}).items()}
    workers = [ManagedWorker.from_record(record) for record in data.get("workers", [])]
    return states, workers


def save_state(path: Path, states: Mapping[str, QueueState], workers: Iterable[ManagedWorker]) -> None:
    """Write atomically: a crash mid-write must not lose the record of which processes are ours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "version": STATE_VERSION,
        "queues": {queue: state.as_dict() for queue, state in sorted(states.items())},
        "workers": [worker.as_record() for worker in workers],
    }
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=1) + "\n")
    partial.replace(path)


class AutoscalerBusy(RuntimeError):
    """Another autoscaler holds the state file's lock."""


@contextlib.contextmanager
def state_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock next to the state file: two autoscalers would fight over the workers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AutoscalerBusy(f"another autoscaler is using {path}") from None
        yield


# --- The loop's body ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One round: a decision per queue, and what the pool did (started, stopping, stopped, killed)."""

    decisions: list[Decision]
    actions: list[str]


class Autoscaler:
    """measure → decide → (with a pool) start or stop local workers, once per `step`."""

    def __init__(
        self,
        client: redis.Redis,
        policies: Mapping[str, ScalingPolicy],
        *,
        pool: LocalWorkerPool | None = None,
        states: Mapping[str, QueueState] | None = None,
        window_seconds: float = RATE_WINDOW_SECONDS,
    ) -> None:
        self.client = client
        self.policies = dict(policies)
        self.pool = pool
        self.states = {queue: (states or {}).get(queue, QueueState()) for queue in self.policies}
        self.window_seconds = window_seconds

    def step(self, now: float | None = None) -> Step:
        moment = time.time() if now is None else now
        actions = self.pool.reap(moment) if self.pool is not None else []
        current = self.pool.counts(self.policies) if self.pool is not None else None
        observations = measure(
            self.client, self.policies, current_workers=current, now=moment, window_seconds=self.window_seconds
        )
        decisions = []
        for queue, policy in self.policies.items():
            decision = decide(observations[queue], policy, self.states[queue], moment)
            self.states[queue] = decision.state
            decisions.append(decision)
            if self.pool is not None:
                actions += self.pool.scale(queue, decision.desired, moment)
        return Step(decisions, actions)


# --- KEDA -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisAddress:
    """The parts of a redis:// or rediss:// URL that KEDA's redis scaler takes (never the password)."""

    host: str
    port: int
    database: int
    tls: bool
    username: str | None
    has_password: bool

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_redis_url(url: str) -> RedisAddress:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(f"KEDA's redis scaler needs a redis:// or rediss:// URL with a host, got {parts.scheme}://")
    path = parts.path.lstrip("/")
    database = path or parse_qs(parts.query).get("db", ["0"])[0]
    return RedisAddress(
        host=parts.hostname,
        port=parts.port or 6379,
        database=int(database),
        tls=parts.scheme == "rediss",
        username=unquote(parts.username) if parts.username else None,
        has_password=bool(parts.password),
    )


def redacted_url(url: str) -> str:
    """The URL with its password replaced, for messages."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def list_length_target(worker_rate: float, target_seconds: float) -> int:
    """KEDA's listLength: messages per replica, so that each replica's share takes `target_seconds`."""
    return max(1, math.floor(worker_rate * target_seconds))


def keda_manifests(
    broker_url: str,
    policies: Mapping[str, ScalingPolicy],
    worker_rates: Mapping[str, float],
    *,
    rate_sources: Mapping[str, str] | None = None,
    polling_interval: int = 30,
    deployment_prefix: str = "curation-worker-",
    namespace: str | None = None,
    address: str | None = None,
    auth_secret: str = "curation-redis",
) -> dict[str, str]:
    """YAML text per file name: a ScaledObject per queue, and a TriggerAuthentication when the URL
    has credentials (which go in the Secret `auth_secret`, keys `username` and `password`, never
    in these files). Same inputs, same bytes.

    worker_rates: tasks/s of one replica per queue; rate_sources: where each came from (measured,
    assumed, ...), for the files' comments. address: host:port as the cluster sees Redis, when it
    differs from the URL's (a URL for localhost is common here).
    """
    redis_address = parse_redis_url(broker_url)
    files: dict[str, str] = {}
    needs_auth = redis_address.has_password or redis_address.username is not None
    in_namespace = {"namespace": namespace} if namespace else {}
    for queue_name, policy in policies.items():
        queue = str(queue_name)  # a Queue member is a str, but PyYAML will not write a subclass
        rate = worker_rates[queue]
        source = f" ({rate_sources[queue]})" if rate_sources and queue in rate_sources else ""
        deployment = f"{deployment_prefix}{queue}"
        trigger: dict[str, Any] = {
            "type": "redis",
            "metadata": {
                "address": address or redis_address.address,
                "listName": queue,
                "listLength": str(list_length_target(rate, policy.target_seconds)),
                "activationListLength": "0",
                "databaseIndex": str(redis_address.database),
                "enableTLS": "true" if redis_address.tls else "false",
            },
        }
        if needs_auth:
            trigger["authenticationRef"] = {"name": auth_secret}
        scaled_object = {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": deployment, **in_namespace, "labels": {"app.kubernetes.io/part-of": "curation"}},
            "spec": {
                "scaleTargetRef": {"name": deployment},
                "pollingInterval": polling_interval,
                "cooldownPeriod": int(policy.scale_down_delay_seconds),
                "minReplicaCount": policy.min_workers,
                "maxReplicaCount": policy.max_workers,
                "advanced": {
                    "horizontalPodAutoscalerConfig": {
                        "behavior": {"scaleDown": {"stabilizationWindowSeconds": int(policy.scale_down_delay_seconds)}}
                    }
                },
                "triggers": [trigger],
            },
        }
        header = (
            f"# Generated by `curation autoscale --keda-out`: queue {queue}, Deployment {deployment}.\n"
            f"# listLength = {rate:.4g} tasks/s per replica{source} x {policy.target_seconds:g} s target.\n"
            "# KEDA counts the list only (LLEN), not the tasks workers hold unacknowledged; with\n"
            "# prefetch 1 those are at most replicas x concurrency. See deploy/keda/README.md.\n"
        )
        files[f"scaledobject-{queue}.yaml"] = header + yaml.safe_dump(scaled_object, sort_keys=False)
    if needs_auth:
        secret_keys = (["username"] if redis_address.username is not None else []) + ["password"]
        authentication = {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": auth_secret, **in_namespace},
            "spec": {"secretTargetRef": [{"parameter": key, "name": auth_secret, "key": key} for key in secret_keys]},
        }
        header = (
            f"# Generated by `curation autoscale --keda-out`. The credentials live in the Secret {auth_secret}\n"
            f"# (keys: {', '.join(secret_keys)}), which is not generated.\n"
        )
        files["triggerauthentication.yaml"] = header + yaml.safe_dump(authentication, sort_keys=False)
    return files


def write_manifests(directory: Path, manifests: Mapping[str, str]) -> list[Path]:
    """Write `keda_manifests(...)`'s files into `directory`; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in manifests.items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
