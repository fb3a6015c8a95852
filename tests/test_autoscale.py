"""The autoscaler: its policy (unit cases and a simulated million-task burst), measurement against a
real Redis fed by kombu itself, the local process pool (with a stand-in for `curation worker`), the
KEDA manifests and the command.

Redis tests run against a private redis-server started on a free port, so they can empty it freely
and nothing another test keeps in the shared server (CURATION_TEST_REDIS_URL) is touched.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import typer
import yaml
from kombu import connection as kombu_connection
from redis.backoff import NoBackoff
from redis.retry import Retry
from typer.testing import CliRunner

from curation.cli.autoscale import autoscale
from tests.conftest import ROOT, unavailable
from workers.autoscale import pool as worker_pool
from workers.autoscale.keda import keda_manifests, redacted_url, write_manifests
from workers.autoscale.loop import Autoscaler
from workers.autoscale.measure import QueueObservation, Throughput, estimate_throughput, measure
from workers.autoscale.metrics import (
    BUCKET_SECONDS,
    COMPLETIONS_TTL_SECONDS,
    TOTAL_TTL_SECONDS,
    WORKER_ID_ENV,
    record_completed,
    worker_identity,
)
from workers.autoscale.policy import (
    DEFAULT_WORKER_RATES,
    Decision,
    QueueState,
    ScalingPolicy,
    decide,
    default_policies,
)
from workers.autoscale.pool import LocalWorkerPool, ManagedWorker, WorkerCommand, process_start_ticks
from workers.autoscale.state_file import AutoscalerBusy, load_state, save_state, state_lock
from workers.queues import Queue

NOW = 1_700_000_000.0
Connection: Callable[[str], Any] = kombu_connection.Connection  # kombu's own Redis transport, untyped


def observe(
    waiting: int = 0,
    unacked: int = 0,
    workers: int = 0,
    worker_rate: float | None = None,
    completed_total: int | None = None,
) -> QueueObservation:
    return QueueObservation(
        "generation", waiting, unacked, workers, worker_rate=worker_rate, completed_total=completed_total
    )


# --- The policy, case by case ----------------------------------------------------------------------


def test_nothing_measured_uses_the_default_rate_and_says_so() -> None:
    policy = ScalingPolicy(target_seconds=1000, max_workers=50, default_worker_rate=2.0, startup_seconds=0)
    decision = decide(observe(waiting=10_000), policy, QueueState(), NOW)
    assert (decision.desired, decision.worker_rate, decision.rate_source) == (5, 2.0, "assumed")
    assert decision.target_met
    assert "2/s per worker (assumed)" in decision.reason


def test_a_measured_rate_is_remembered_while_nothing_completes() -> None:
    policy = ScalingPolicy(target_seconds=1000, max_workers=50, default_worker_rate=2.0, startup_seconds=0)
    first = decide(observe(waiting=10_000, workers=1, worker_rate=10.0), policy, QueueState(), NOW)
    assert (first.desired, first.rate_source) == (1, "measured")
    # A slow task can leave a whole window without completions: the rate seen before still holds.
    later = decide(observe(waiting=10_000, workers=1), policy, first.state, NOW + 60)
    assert (later.worker_rate, later.rate_source) == (10.0, "last measured")


def test_the_startup_time_of_new_workers_is_planned_for() -> None:
    instant = ScalingPolicy(target_seconds=1000, max_workers=50, startup_seconds=0)
    slow_start = ScalingPolicy(target_seconds=1000, max_workers=50, startup_seconds=500)
    seen = observe(waiting=10_000, worker_rate=1.0)
    assert decide(seen, instant, QueueState(), NOW).desired == 10
    assert decide(seen, slow_start, QueueState(), NOW).desired == 20  # they work 500 s of the 1000


def test_more_than_max_workers_needed_goes_to_max_and_says_the_target_cannot_be_met() -> None:
    policy = ScalingPolicy(target_seconds=100, max_workers=4, startup_seconds=0)
    decision = decide(observe(waiting=10_000, worker_rate=1.0), policy, QueueState(), NOW)
    assert (decision.needed, decision.desired, decision.target_met) == (100, 4, False)
    assert decision.reason.startswith("target cannot be met: 100 needed")
    assert "4 finish the queue in 42m" in decision.reason


def test_min_workers_are_kept_on_an_empty_queue() -> None:
    policy = ScalingPolicy(min_workers=2, max_workers=5)
    decision = decide(observe(workers=5), policy, QueueState(), NOW)
    assert decision.desired == 2
    assert decision.reason == "queue empty; min 2"


def test_any_queued_or_unacknowledged_task_keeps_one_worker() -> None:
    policy = ScalingPolicy(min_workers=0, max_workers=5, scale_down_delay_seconds=0)
    assert decide(observe(waiting=1), policy, QueueState(), NOW).desired == 1
    # A task a worker holds unacknowledged is not done: stopping the last worker would strand it.
    assert decide(observe(unacked=1, workers=1), policy, QueueState(), NOW).desired == 1
    assert decide(observe(workers=1), policy, QueueState(), NOW).desired == 0


def test_scale_up_is_immediate_and_scale_down_waits_for_the_delay() -> None:
    policy = ScalingPolicy(
        target_seconds=100, max_workers=20, default_worker_rate=1.0, startup_seconds=0, scale_down_delay_seconds=300
    )
    up = decide(observe(waiting=1000, workers=2), policy, QueueState(), NOW)
    assert up.desired == 10
    # The queue empties at once (say a purge): the workers stay for the delay, then all go.
    held = decide(observe(workers=10), policy, up.state, NOW + 299)
    assert (held.desired, held.needed) == (10, 0)
    assert "keeping 10, down to 0 in 1s if the load stays" in held.reason
    gone = decide(observe(workers=10), policy, held.state, NOW + 301)
    assert gone.desired == 0
    assert gone.reason == "queue empty"


def test_scale_down_goes_to_the_highest_recommendation_of_the_delay() -> None:
    policy = ScalingPolicy(
        target_seconds=100, max_workers=20, default_worker_rate=1.0, startup_seconds=0, scale_down_delay_seconds=100
    )
    state = QueueState()
    desired = []
    # The need drops from 10 to 6 to 3 workers (each time the whole queue is due a target later,
    # which is what clearing the deadline does); each lower count is applied 100 s after it was seen.
    for offset, waiting, workers in [(0, 1000, 0), (50, 600, 10), (60, 300, 10), (101, 300, 10), (161, 300, 6)]:
        decision = decide(
            observe(waiting=waiting, workers=workers), policy, replace(state, deadline=None), NOW + offset
        )
        state = decision.state
        desired.append(decision.desired)
    assert desired == [10, 10, 10, 6, 3]


def test_a_first_decision_answers_from_the_present_alone() -> None:
    policy = ScalingPolicy(max_workers=20, scale_down_delay_seconds=300)
    decision = decide(observe(workers=7), policy, QueueState(), NOW)
    assert (decision.desired, decision.reason) == (0, "queue empty")


def test_the_deadline_holds_while_a_burst_drains_on_plan() -> None:
    policy = ScalingPolicy(target_seconds=1000, max_workers=100, startup_seconds=0, default_worker_rate=1.0)
    state = QueueState()
    backlog, counts = 10_000, []
    for step in range(10):
        decision = decide(
            observe(waiting=backlog, workers=10, completed_total=10_000 - backlog), policy, state, NOW + 90 * step
        )
        state, backlog = decision.state, backlog - 10 * 90
        counts.append(decision.desired)
        assert state.deadline == NOW + 1000
    # A deadline recomputed as now + target would have asked for fewer workers at every step.
    assert counts == [10] * 10


def test_growth_of_the_queue_is_new_work_due_a_target_later() -> None:
    policy = ScalingPolicy(target_seconds=1000, max_workers=100, startup_seconds=0, default_worker_rate=1.0)
    first = decide(observe(waiting=5000, completed_total=0), policy, QueueState(), NOW)
    assert (first.state.deadline, first.state.due) == (NOW + 1000, 5000)
    # 500 s on, 2,500 done and 4,000 more arrived: the first tasks keep their deadline.
    second = decide(observe(waiting=6500, workers=5, completed_total=2500), policy, first.state, NOW + 500)
    assert (second.state.deadline, second.state.due) == (NOW + 1000, 2500)
    assert "6,500 queued (2,500 due in" in second.reason
    assert second.desired == 7  # 6,500 within 1000 s (the binding constraint), not 2,500 within 500 s (5)
    # Once those are done, what is queued becomes due a full target later.
    third = decide(observe(waiting=4000, workers=7, completed_total=5000), policy, second.state, NOW + 900)
    assert (third.state.deadline, third.state.due) == (NOW + 1900, 4000)


def test_sustained_arrivals_keep_workers_even_on_an_empty_queue() -> None:
    policy = ScalingPolicy(
        target_seconds=600, max_workers=100, startup_seconds=0, default_worker_rate=5.0, scale_down_delay_seconds=0
    )
    assert policy.arrival_window_seconds == 60
    state, decision = QueueState(), None
    # 100 tasks/s arrive and 21 workers take them as they come: the queue is empty at every look.
    for step in range(6):
        decision = decide(observe(workers=21, completed_total=1500 * step), policy, state, NOW + 15 * step)
        state = decision.state
    assert decision is not None
    assert decision.arrival_rate == pytest.approx(100)
    assert decision.desired == 20
    assert "0 queued, 100/s arriving" in decision.reason


def test_a_burst_is_not_a_sustained_arrival_rate() -> None:
    policy = ScalingPolicy(target_seconds=3600, max_workers=1000, startup_seconds=0, default_worker_rate=5.0)
    assert policy.arrival_window_seconds == 360
    state, desired = QueueState(), []
    for step in range(60):
        backlog = 0 if step < 30 else 100_000  # 100,000 tasks arrive in one interval, and stay
        decision = decide(observe(waiting=backlog, workers=6, completed_total=0), policy, state, NOW + 15 * step)
        state = decision.state
        desired.append(decision.desired)
        assert decision.arrival_rate == 0
    assert desired[29:31] == [0, 6]  # 100,000 within an hour at 5/s each, not 6,667/s from now on


def test_the_policy_rejects_nonsense() -> None:
    for bad in (
        {"target_seconds": 0},
        {"min_workers": 3, "max_workers": 2},
        {"max_workers": 0},
        {"default_worker_rate": 0},
        {"min_work_seconds": 0},
    ):
        with pytest.raises(ValueError):
            ScalingPolicy(**bad)


def test_the_state_survives_json() -> None:
    policy = ScalingPolicy(target_seconds=600, max_workers=9)
    state = QueueState()
    for step in range(6):
        state = decide(
            observe(waiting=1000 + 100 * step, workers=3, worker_rate=2.0, completed_total=50 * step),
            policy,
            state,
            NOW + 15 * step,
        ).state
    assert state.arrival_rates and state.recommendations and state.deadline
    assert QueueState.from_dict(json.loads(json.dumps(state.as_dict()))) == state


# --- Throughput from completion buckets --------------------------------------------------------------


def test_throughput_per_worker_is_not_diluted_by_workers_that_started_or_stopped_in_the_window() -> None:
    now = 1000.0  # the window is buckets 189..200 (from 945 s); 200 has just begun and is empty
    buckets: dict[int, dict[str, int]] = defaultdict(dict)
    for index in range(189, 200):
        buckets[index]["steady"] = 10  # 2 tasks/s all along
    for index in range(195, 200):
        buckets[index]["new"] = 10  # started 25 s ago, 2 tasks/s since
    for index in range(189, 192):
        buckets[index]["stopped"] = 10  # 2 tasks/s until it stopped, 40 s ago
    throughput = estimate_throughput(buckets, now)
    assert throughput.workers == 3
    assert throughput.per_worker == pytest.approx(190 / (55 + 25 + 15)) == 2.0
    assert throughput.tasks_per_second == pytest.approx(190 / 55)


def test_throughput_of_nothing_is_unknown() -> None:
    assert estimate_throughput({}, 1000.0) == Throughput(0.0, None, 0)
    old = {100: {"w": 50}}  # long before the window
    assert estimate_throughput(old, 1000.0).per_worker is None


# --- The simulation: a million tasks at once, then nothing -----------------------------------------


@dataclass
class SimulatedWorker:
    name: str
    ready_at: float
    rate: float
    unfinished: float = 0.0  # a part-done task carried to the next tick


@dataclass
class Simulation:
    times: list[float] = field(default_factory=list)
    backlogs: list[int] = field(default_factory=list)
    workers: list[int] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    drained_at: float | None = None

    def direction_changes(self) -> int:
        steps = [b - a for a, b in itertools.pairwise(self.workers) if b != a]
        return sum(1 for a, b in itertools.pairwise(steps) if (a > 0) != (b > 0))


def simulate(
    policy: ScalingPolicy,
    *,
    arrivals: Callable[[float], int],
    worker_rate: float,
    startup_seconds: float,
    duration: float,
    interval: float = 15.0,
    jitter: float = 0.2,
    seed: int = 0,
) -> Simulation:
    """One queue, one-second ticks. Workers start `startup_seconds` after the policy asks for them,
    each works at its own rate (worker_rate ± jitter) and records its completions in 5-second
    buckets as record_completed does; the policy sees them through estimate_throughput, as it does
    through measure. Stopping takes the newest workers first, like LocalWorkerPool."""
    rng = random.Random(seed)
    backlog = completed = serial = 0
    workers: list[SimulatedWorker] = []
    buckets: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    state = QueueState()
    run = Simulation()
    next_decision = 0.0
    for tick in range(int(duration)):
        now = float(tick)
        backlog += arrivals(now)
        if now >= next_decision:
            throughput = estimate_throughput(buckets, now)
            in_hand = min(backlog, sum(1 for w in workers if w.ready_at <= now))  # prefetch 1, concurrency 1
            seen = QueueObservation(
                "generation",
                waiting=backlog - in_hand,
                unacked=in_hand,
                workers=len(workers),
                worker_rate=throughput.per_worker,
                completion_rate=throughput.tasks_per_second,
                completed_total=completed,
            )
            decision = decide(seen, policy, state, now)
            state = decision.state
            while len(workers) < decision.desired:
                serial += 1
                rate = worker_rate * (1 + jitter * rng.uniform(-1, 1))
                workers.append(SimulatedWorker(f"w{serial}", now + startup_seconds, rate))
            del workers[decision.desired :]
            run.times.append(now)
            run.backlogs.append(backlog)
            run.workers.append(decision.desired)
            run.decisions.append(decision)
            next_decision += interval
        for worker in workers:
            if worker.ready_at <= now and backlog:
                worker.unfinished += worker.rate
                done = min(int(worker.unfinished), backlog)
                worker.unfinished -= int(worker.unfinished)
                backlog -= done
                completed += done
                buckets[int(now // BUCKET_SECONDS)][worker.name] += done
        if backlog == 0 and run.drained_at is None and completed:
            run.drained_at = now + 1
    return run


def burst(tasks: int) -> Callable[[float], int]:
    return lambda now: tasks if now == 0 else 0


@pytest.mark.parametrize(
    ("assumed_rate", "min_workers"),
    [(5.0, 0), (1.0, 0), (20.0, 2)],
    ids=["assumed-right", "assumed-too-slow", "assumed-too-fast-min-2"],
)
def test_a_million_task_burst_drains_within_the_target_and_scales_back(assumed_rate: float, min_workers: int) -> None:
    target, delay = 3600.0, 300.0
    policy = ScalingPolicy(
        target_seconds=target,
        min_workers=min_workers,
        max_workers=100,
        default_worker_rate=assumed_rate,
        startup_seconds=60,
        scale_down_delay_seconds=delay,
    )
    # Workers really take 90 s to start (the policy assumes 60) and do 5 tasks/s ± 20%.
    run = simulate(policy, arrivals=burst(1_000_000), worker_rate=5.0, startup_seconds=90, duration=5400)
    needed = math.ceil(1_000_000 / (5.0 * (target - 90)))  # 57

    assert run.drained_at is not None
    assert target * 0.8 <= run.drained_at <= target * 1.02
    assert run.workers[-1] == min_workers
    back_at_min = next(
        t for t, n in zip(run.times, run.workers, strict=True) if t > run.drained_at and n == min_workers
    )
    assert back_at_min <= run.drained_at + delay + 30
    assert run.direction_changes() <= 1  # up, then down: never back up
    draining = [n for t, n in zip(run.times, run.workers, strict=True) if 600 <= t < run.drained_at]
    assert max(draining) <= needed + 2, "once the rate is measured, no more workers than the target needs"
    assert all(d.target_met for d in run.decisions if d.rate_source == "measured")


def test_a_burst_too_big_for_max_workers_runs_at_max_and_reports_the_target_cannot_be_met() -> None:
    policy = ScalingPolicy(target_seconds=3600, max_workers=20, default_worker_rate=5.0, startup_seconds=60)
    run = simulate(policy, arrivals=burst(1_000_000), worker_rate=5.0, startup_seconds=90, duration=12_000)

    assert run.drained_at is not None
    assert run.drained_at == pytest.approx(90 + 1_000_000 / (20 * 5.0), rel=0.05)  # max workers, all along
    while_queued = [d for d in run.decisions if d.observation.backlog > 0]
    assert {d.desired for d in while_queued} == {20}
    assert all(not d.target_met and d.reason.startswith("target cannot be met") for d in while_queued)
    assert "57 needed for 1,000,000 queued, due in 60m, max 20" in run.decisions[0].reason
    assert run.workers[-1] == 0
    assert run.direction_changes() == 0


def test_a_steady_stream_settles_on_the_workers_that_keep_pace() -> None:
    policy = ScalingPolicy(target_seconds=600, max_workers=100, default_worker_rate=5.0, startup_seconds=60)
    run = simulate(
        policy, arrivals=lambda now: 100 if now < 5400 else 0, worker_rate=5.0, startup_seconds=90, duration=7200
    )
    settled = [n for t, n in zip(run.times, run.workers, strict=True) if 1200 <= t < 5400]
    assert set(settled) <= {20, 21, 22}, "100 tasks/s at 5/s each: 20 workers and a margin"
    assert len(set(settled)) == 1
    assert max(run.backlogs) < 100 * 600, "no task waits as long as the target"
    assert run.workers[-1] == 0


# --- Measurement against Redis, fed by kombu's own Redis transport -----------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port nothing answers on, for the whole test: bound (without SO_REUSEADDR, so no one else
    can bind it) but never listening, so every connection to it is refused at once."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server") or ""
    if not binary:
        unavailable("Redis", "redis-server is not installed")
    directory = tmp_path_factory.mktemp("redis")
    error: Exception | None = None
    for _ in range(3):  # another process may take the free port first
        port = _free_port()
        server = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and server.poll() is None:
            try:
                client.ping()
                break
            except redis.ConnectionError as exc:
                error = exc
                time.sleep(0.05)
        else:
            server.kill()
            server.wait()
            continue
        client.close()
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            server.wait()
        return
    unavailable("Redis", f"could not start redis-server: {error}")


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()  # a private server: every key in it is this file's
    yield connection
    connection.close()


@pytest.mark.redis
def test_measure_counts_waiting_unacknowledged_and_completed_tasks(redis_url: str, client: redis.Redis) -> None:
    with Connection(redis_url) as producer, Connection(redis_url) as first, Connection(redis_url) as second:
        queue = producer.SimpleQueue("generation")
        for n in range(5):
            queue.put({"n": n}, priority=9 if n % 2 else 0)  # a second list, generation\x06\x169
        producer.SimpleQueue("execution").put({"n": 0})
        # Two workers with prefetch 1 each take one task and have not acknowledged it yet.
        held = []
        for worker in (first, second):
            consumer = worker.SimpleQueue("generation")
            consumer.consumer.qos(prefetch_count=1)
            held.append(consumer.get(timeout=5))
        client.hset("unacked", "not-kombu", b"\xff not json")  # ignored, not fatal

        now = time.time()
        record_completed(client, "generation", 40, now - 30, worker="a")
        record_completed(client, "generation", 20, now - 10, worker="b")
        record_completed(client, "generation", 10, now - 3600, worker="a")  # outside the window
        seen = measure(client, ["generation", "execution", "verification"], now=now)

        generation = seen["generation"]
        assert (generation.waiting, generation.unacked, generation.workers) == (3, 2, 2)
        assert generation.completed_total == 70
        assert generation.completion_rate == pytest.approx(60 / (now - (math.floor(now / 5) - 11) * 5))
        assert generation.worker_rate == 60 / 10  # each worker seen in one 5-second bucket
        assert (seen["execution"].waiting, seen["execution"].unacked) == (1, 0)
        assert seen["verification"] == QueueObservation("verification", 0, 0, 0, None, 0.0, None)

        held[0].ack()
        after = measure(client, ["generation"], now=now, current_workers={"generation": 5})["generation"]
        assert (after.unacked, after.workers) == (1, 5)


@pytest.mark.redis
def test_completions_are_kept_under_the_prefix_and_expire(client: redis.Redis) -> None:
    record_completed(client, "execution", now=1000.0, worker="w")
    record_completed(client, "execution", 2, now=1004.0, worker="w")
    record_completed(client, "execution", 0, now=1004.0, worker="w")  # nothing to count
    keys = sorted(client.keys("*"))
    assert keys == [b"curation:autoscale:completed:execution:200", b"curation:autoscale:completed_total:execution"]
    assert client.hgetall(keys[0]) == {b"w": b"3"}
    assert 0 < client.ttl(keys[0]) <= COMPLETIONS_TTL_SECONDS
    assert 0 < client.ttl(keys[1]) <= TOTAL_TTL_SECONDS
    with pytest.raises(ValueError):
        record_completed(client, "execution", -1)


def test_a_completion_that_cannot_be_recorded_does_not_fail_the_task(
    caplog: pytest.LogCaptureFixture, refused_port: int
) -> None:
    unreachable = redis.Redis(port=refused_port, retry=Retry(NoBackoff(), 0))
    with caplog.at_level(logging.WARNING, logger="workers.autoscale"):
        record_completed(unreachable, "generation")
    assert "could not record 1 completed generation task(s)" in caplog.text


def test_worker_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WORKER_ID_ENV, "generation-1@host")
    assert worker_identity() == "generation-1@host"
    monkeypatch.delenv(WORKER_ID_ENV)
    # Outside a Celery task: this process. Inside one: the Celery node, shared by its pool's children.
    monkeypatch.setitem(sys.modules, "celery", SimpleNamespace(current_task=None))
    assert worker_identity() == f"{socket.gethostname()}:{os.getpid()}"
    task = SimpleNamespace(request=SimpleNamespace(hostname="celery@pod-7"))
    monkeypatch.setitem(sys.modules, "celery", SimpleNamespace(current_task=task))
    assert worker_identity() == "celery@pod-7"


@pytest.mark.redis
def test_an_autoscaler_step_measures_and_decides_every_queue(client: redis.Redis) -> None:
    client.rpush("verification", *[b"{}"] * 4000)
    policies = default_policies(list(Queue), target_seconds=100, max_workers=3, startup_seconds=0)
    step = Autoscaler(client, policies).step()
    desired = {decision.queue: decision.desired for decision in step.decisions}
    # 4,000 in 100 s at 20/s each
    assert desired == {"generation": 0, "execution": 0, "verification": 2, "training": 0}
    assert step.actions == []


# --- KEDA --------------------------------------------------------------------------------------------


def _documents(manifests: dict[str, str]) -> dict[str, Any]:
    return {name: yaml.safe_load(text) for name, text in manifests.items()}


def test_keda_scaled_objects_carry_the_sizing_and_no_password() -> None:
    policies = default_policies(["generation", "execution"], target_seconds=1800, min_workers=1, max_workers=40)
    manifests = keda_manifests(
        "redis://curation:s3cret@redis.example:6380/3",
        policies,
        {"generation": 0.5, "execution": 12.5},
        polling_interval=20,
        namespace="curation",
    )
    assert sorted(manifests) == [
        "scaledobject-execution.yaml",
        "scaledobject-generation.yaml",
        "triggerauthentication.yaml",
    ]
    assert not any("s3cret" in text for text in manifests.values())
    documents = _documents(manifests)
    generation = documents["scaledobject-generation.yaml"]
    assert generation["apiVersion"] == "keda.sh/v1alpha1" and generation["kind"] == "ScaledObject"
    assert generation["metadata"] == {
        "name": "curation-worker-generation",
        "namespace": "curation",
        "labels": {"app.kubernetes.io/part-of": "curation"},
    }
    spec = generation["spec"]
    assert isinstance(spec, dict)
    assert spec["scaleTargetRef"] == {"name": "curation-worker-generation"}
    assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (20, 300)
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 40)
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 300
    }
    [trigger] = spec["triggers"]
    assert trigger == {
        "type": "redis",
        "metadata": {
            "address": "redis.example:6380",
            "listName": "generation",
            "listLength": "900",  # 0.5/s x 1800 s
            "activationListLength": "0",
            "databaseIndex": "3",
            "enableTLS": "false",
        },
        "authenticationRef": {"name": "curation-redis"},
    }
    execution_trigger = documents["scaledobject-execution.yaml"]["spec"]["triggers"][0]
    assert execution_trigger["metadata"]["listLength"] == "22500"
    authentication = documents["triggerauthentication.yaml"]
    assert authentication["kind"] == "TriggerAuthentication"
    assert authentication["spec"] == {
        "secretTargetRef": [
            {"parameter": "username", "name": "curation-redis", "key": "username"},
            {"parameter": "password", "name": "curation-redis", "key": "password"},
        ]
    }


def test_keda_manifests_are_deterministic_and_follow_the_url(tmp_path: Path) -> None:
    policies: dict[str, ScalingPolicy] = {Queue.verification: ScalingPolicy(target_seconds=60)}
    args = ("rediss://[::1]/0", policies, {"verification": 0.001})
    first = write_manifests(tmp_path / "a", keda_manifests(*args))
    second = write_manifests(tmp_path / "b", keda_manifests(*args))
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    [path] = first
    trigger = yaml.safe_load(path.read_text())["spec"]["triggers"][0]
    assert trigger["metadata"]["address"] == "[::1]:6379"
    assert trigger["metadata"]["enableTLS"] == "true"
    assert trigger["metadata"]["listLength"] == "1"  # never 0: KEDA would divide by it
    assert "authenticationRef" not in trigger
    moved = keda_manifests("redis://localhost/0", policies, {"verification": 1.0}, address="redis.svc:6379")
    assert "address: redis.svc:6379" in moved["scaledobject-verification.yaml"]
    with pytest.raises(ValueError, match="redis:// or rediss://"):
        keda_manifests("unix:///tmp/redis.sock", policies, {"verification": 1.0})


def test_the_example_manifests_in_deploy_are_the_writers_output() -> None:
    # The inputs deploy/keda/README.md gives for them.
    policies = default_policies(list(Queue), target_seconds=3600, max_workers=20)
    manifests = keda_manifests(
        "redis://:example-password@redis:6379/0",
        policies,
        DEFAULT_WORKER_RATES,
        rate_sources=dict.fromkeys(policies, "assumed"),
        polling_interval=15,
    )
    examples = ROOT / "deploy" / "keda"
    assert {path.name: path.read_text() for path in examples.glob("*.yaml")} == manifests


def test_redacted_url_hides_the_password() -> None:
    assert redacted_url("redis://user:pw@host:1/0") == "redis://user:***@host:1/0"
    assert redacted_url("redis://host:1/0") == "redis://host:1/0"


# --- The local pool, with a stand-in for `curation worker` -----------------------------------------

STAND_IN = """
import os, signal, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
# One write of one whole line: print() writes each argument separately when stdout is unbuffered
# (PYTHONUNBUFFERED), and a reader could see "ready" before the rest of the line.
line = " ".join(["ready", os.environ["CURATION_WORKER_ID"], str(os.environ.get("CURATION_BROKER_URL")), *sys.argv[2:]])
os.write(1, (line + "\\n").encode())
time.sleep(120)
"""


def stand_in(kind: str = "obliging") -> WorkerCommand:
    def command(queue: str, concurrency: int) -> list[str]:
        return [sys.executable, "-c", STAND_IN, kind, queue, str(concurrency)]

    return command


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def ready_line_written(log: Path) -> bool:
    return log.exists() and log.read_text().startswith("ready") and log.read_text().endswith("\n")


def ready(pool: LocalWorkerPool, worker: ManagedWorker) -> bool:
    assert pool.log_dir is not None
    return ready_line_written(pool.log_dir / f"{worker.worker_id}.log")


@pytest.fixture
def pools() -> Iterator[list[LocalWorkerPool]]:
    made: list[LocalWorkerPool] = []
    yield made
    for pool in made:
        pool.stop_all(timeout=0.5)


def test_the_pool_starts_workers_and_stops_the_newest_first(tmp_path: Path, pools: list[LocalWorkerPool]) -> None:
    pool = LocalWorkerPool(stand_in(), concurrency=4, env={"CURATION_BROKER_URL": "redis://b:1/0"}, log_dir=tmp_path)
    pools.append(pool)
    actions = (
        pool.scale("generation", 1, now=100.0) + pool.scale("execution", 1) + pool.scale("generation", 2, now=200.0)
    )
    assert [a.split()[0] for a in actions] == ["started"] * 3
    older, newer = sorted((w for w in pool.workers if w.queue == "generation"), key=lambda w: w.started_at)
    for worker in pool.workers:
        wait_until(partial(ready, pool, worker))
        log = (tmp_path / f"{worker.worker_id}.log").read_text().split()
        assert log == ["ready", worker.worker_id, "redis://b:1/0", worker.queue, "4"]
        assert worker.worker_id.startswith(f"{worker.queue}-") and worker.start_ticks > 0
    assert pool.counts(["generation", "execution", "verification"]) == {
        "generation": 2,
        "execution": 1,
        "verification": 0,
    }

    assert pool.scale("generation", 1) == [f"stopping {newer.worker_id} (pid {newer.pid})"]
    assert pool.running("generation") == 1
    wait_until(lambda: newer not in pool.workers or not newer.alive())
    assert pool.reap() == [f"{newer.worker_id} stopped"]
    assert older.alive() and newer.process is not None and newer.process.returncode == -signal.SIGTERM
    assert pool.scale("generation", 1) == []


def test_a_worker_that_ignores_sigterm_is_killed_after_the_timeout(
    tmp_path: Path, pools: list[LocalWorkerPool]
) -> None:
    pool = LocalWorkerPool(stand_in("stubborn"), stop_timeout=0.3, log_dir=tmp_path)
    pools.append(pool)
    pool.scale("execution", 1)
    [worker] = pool.workers
    wait_until(lambda: ready(pool, worker))
    # The clock is driven by hand: a loaded machine cannot make 0.1 s of wall time pass the 0.3 s grace.
    t0 = time.time()
    pool.scale("execution", 0, now=t0)
    assert pool.reap(now=t0 + 0.1) == [] and worker.alive(), "still finishing its tasks"
    assert pool.reap(now=t0 + 0.29) == [] and worker.alive()
    assert pool.reap(now=t0 + 1.0) == [f"killed {worker.worker_id} (pid {worker.pid}) after 0.3s"]
    wait_until(lambda: pool.reap(now=t0 + 1.0) == [f"{worker.worker_id} stopped"] and not pool.workers)
    assert worker.process is not None and worker.process.returncode == -signal.SIGKILL


def test_a_worker_that_dies_is_reported_and_replaced(tmp_path: Path, pools: list[LocalWorkerPool]) -> None:
    pool = LocalWorkerPool(stand_in(), log_dir=tmp_path)
    pools.append(pool)
    pool.scale("verification", 1)
    [worker] = pool.workers
    assert worker.process is not None
    worker.process.kill()
    worker.process.wait()
    assert pool.reap() == [f"{worker.worker_id} exited unexpectedly (code -9)"]
    assert pool.running("verification") == 0
    assert len(pool.scale("verification", 1)) == 1


def test_a_later_pool_adopts_only_live_processes_it_can_prove_it_started(
    tmp_path: Path, pools: list[LocalWorkerPool]
) -> None:
    first = LocalWorkerPool(stand_in(), log_dir=tmp_path)
    pools.append(first)
    first.scale("generation", 1)
    [worker] = first.workers
    wait_until(lambda: ready(first, worker))
    exited = subprocess.Popen(["true"])
    exited.wait()
    records = [
        worker.as_record(),
        # Our own pid with another start time: a reused pid, which must never be signalled.
        {**worker.as_record(), "worker_id": "impostor", "pid": os.getpid()},
        {**worker.as_record(), "worker_id": "gone", "pid": exited.pid},
    ]
    state_file = tmp_path / "state.json"
    save_state(state_file, {"generation": QueueState(deadline=5.0)}, [ManagedWorker.from_record(r) for r in records])
    states, adopted = load_state(state_file)
    assert states == {"generation": QueueState(deadline=5.0)}

    second = LocalWorkerPool(stand_in(), adopt=adopted)
    pools.append(second)
    assert second.reap() == [
        "impostor is gone (it was started by an earlier run)",
        "gone is gone (it was started by an earlier run)",
    ]
    assert [w.worker_id for w in second.workers] == [worker.worker_id]
    assert second.workers[0].process is None
    second.scale("generation", 0)
    assert worker.process is not None
    assert worker.process.wait(timeout=10) == -signal.SIGTERM
    assert second.reap() == [f"{worker.worker_id} stopped"]  # a zombie is not running


def test_the_state_lock_keeps_out_a_second_autoscaler(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with state_lock(path), pytest.raises(AutoscalerBusy), state_lock(path):
        pass
    with state_lock(path):  # released
        pass


# --- The command ----------------------------------------------------------------------------------

runner = CliRunner()
app = typer.Typer()
app.command()(autoscale)


def curation_autoscale(*args: str) -> str:
    result = runner.invoke(app, list(args))
    if result.exit_code != 0:
        raise AssertionError(f"exit {result.exit_code}: {result.output}\n{result.exception!r}")
    return result.output


def table_rows(output: str) -> dict[str, dict[str, str]]:
    """The command's table by queue: header → cell, a wrapped reason joined back together."""
    lines = [line for line in output.splitlines() if line.startswith(("┃", "│"))]
    header = [cell.strip() for cell in lines[0].strip("┃").split("┃")]
    rows: dict[str, dict[str, str]] = {}
    last: dict[str, str] = {}
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.strip("│").split("│")]
        if cells[0]:
            last = rows[cells[0]] = dict(zip(header, cells, strict=True))
        else:
            last["reason"] += " " + cells[-1]
    return rows


@pytest.mark.redis
def test_the_command_prints_a_table_and_writes_keda_manifests(
    redis_url: str, client: redis.Redis, tmp_path: Path
) -> None:
    client.rpush("generation", *[b"{}"] * 1500)
    record_completed(client, "execution", 30, worker="somewhere")
    output = curation_autoscale(
        "--broker-url", redis_url, "--target-minutes", "10", "--max", "4", "--keda-out", str(tmp_path / "keda")
    )
    rows = table_rows(output)
    assert rows.keys() == {"generation", "execution", "verification", "training"}
    generation = rows["generation"]
    assert (generation["waiting"], generation["per worker/s"], generation["desired"]) == ("1,500", "0.5*", "4")
    assert generation["reason"].startswith("target cannot be met: 6 needed for 1,500 queued, due in 10m, max 4")
    execution = rows["execution"]
    assert (execution["workers seen"], execution["desired"], execution["reason"]) == ("1", "0", "queue empty")
    assert execution["per worker/s"] == "6"  # 30 tasks in one 5-second bucket
    keda = tmp_path / "keda"
    assert sorted(p.name for p in keda.iterdir()) == [
        "scaledobject-execution.yaml",
        "scaledobject-generation.yaml",
        "scaledobject-training.yaml",
        "scaledobject-verification.yaml",
    ]
    execution_manifest = (keda / "scaledobject-execution.yaml").read_text()
    assert "# listLength = 6 tasks/s per replica (measured) x 600 s target." in execution_manifest
    assert yaml.safe_load(execution_manifest)["spec"]["triggers"][0]["metadata"]["listLength"] == "3600"
    assert "0.5 tasks/s per replica (assumed)" in (keda / "scaledobject-generation.yaml").read_text()


@pytest.mark.redis
def test_the_command_applies_decisions_to_local_workers_across_runs(
    redis_url: str, client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_pool, "curation_worker_command", stand_in())
    state_file = tmp_path / "state.json"
    common = ["--broker-url", redis_url, "--queue", "generation", "--apply", "--once", "--state-file", str(state_file)]
    client.rpush("generation", *[b"{}"] * 500)
    started: list[dict[str, Any]] = []
    try:
        first = curation_autoscale(
            *common,
            "--target-minutes",
            "1",
            "--max",
            "3",
            "--default-rate",
            "generation=1",
            "--log-dir",
            str(tmp_path),
        )
        assert first.count("started generation-") == 3
        started = json.loads(state_file.read_text())["workers"]
        assert len(started) == 3 and {w["queue"] for w in started} == {"generation"}
        for record in started:
            log = tmp_path / f"{record['worker_id']}.log"
            wait_until(partial(ready_line_written, log))
            assert log.read_text().split() == ["ready", record["worker_id"], redis_url, "generation", "1"]

        client.delete("generation")
        second = curation_autoscale(*common, "--cooldown", "0")
        assert second.count("stopping generation-") == 3
        for record in started:
            wait_until(partial(lambda pid: process_start_ticks(pid) is None, record["pid"]))
        third = curation_autoscale(*common, "--cooldown", "0")
        assert third.count(" stopped") == 3
        assert json.loads(state_file.read_text())["workers"] == []
    finally:
        for record in started:
            if process_start_ticks(record["pid"]) == record["start_ticks"]:
                os.kill(record["pid"], signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):  # reaped already
                os.waitpid(record["pid"], 0)


@pytest.mark.redis
def test_the_command_explains_what_it_cannot_do(redis_url: str, refused_port: int) -> None:
    result = runner.invoke(app, [])
    assert "no broker" in str(result.exception)
    result = runner.invoke(app, ["--broker-url", redis_url, "--once"])
    assert "--once goes with --apply" in str(result.exception)
    result = runner.invoke(app, ["--broker-url", redis_url, "--default-rate", "gpu=3"])
    assert "unknown queue 'gpu'" in str(result.exception)
    result = runner.invoke(app, ["--broker-url", f"redis://127.0.0.1:{refused_port}/0"])
    assert "cannot reach the broker" in str(result.exception)
