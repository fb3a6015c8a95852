"""The scaling policy: `decide` is a pure function of a queue's observation, a `ScalingPolicy`
and what it remembered from its previous call (`QueueState`). It returns a `Decision`: the worker
count and a one-line reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from workers.autoscale.measure import RATE_WINDOW_SECONDS, QueueObservation
from workers.queues import Queue

# Tasks per second one worker (one `curation worker` process at its default concurrency) is assumed
# to complete until a rate has been measured. Deliberately low: too many workers for the first
# minute cost less than a first minute spent too slow, and a measured rate replaces these as soon
# as tasks complete.
DEFAULT_WORKER_RATES: dict[str, float] = {
    Queue.generation: 0.5,  # waits on the teacher
    Queue.execution: 10.0,  # sandboxed programs, a few ms to a few s each
    Queue.verification: 20.0,  # answer checks and label inserts
}
FALLBACK_WORKER_RATE = 1.0


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
