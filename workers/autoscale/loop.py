"""The autoscaler's round: measure → decide → (with a pool) start or stop local workers."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import redis

from workers.autoscale.measure import RATE_WINDOW_SECONDS, measure
from workers.autoscale.policy import Decision, QueueState, ScalingPolicy, decide
from workers.autoscale.pool import LocalWorkerPool


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
