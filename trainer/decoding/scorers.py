"""Step scorers for step-verified decoding: each sees every completed step of every beam of every
problem of one search iteration at once, and says per step whether the beam lives and what it scores.

- ExecutionScorer: runs the program prefix in the sandbox (a short limit). A prefix that raises
  (NameError for an undefined name included) or is killed is pruned; one that runs, or runs out of
  time or memory (inconclusive: a `while` loop whose `break` is the next line), is kept. All the
  iteration's prefixes go to the sandbox in one batch, and a prefix cache (keyed by the exact
  prefix source) makes sure no prefix runs twice.
- LogProbScorer: the model's mean token log-probability of the step; aggregated by `min` over
  the beam's steps (its least confident step), since the ranking already holds the mean over all
  its tokens.
- VerifierScorer: a learned verifier's log P(correct | question, prefix); aggregated by `last`
  (it reads the whole prefix each time).

How a prefix is made executable: it is run as it stands. A prefix inside `def solution():` is a
complete function definition (compile_command accepts it as soon as the body has a line), and the
sandbox calls a callable `solution` with no arguments (workers/sandbox/child.py), so the body lines
so far run, with an implicit `return None` at the end. Nothing is lifted or rewritten, so what runs
is exactly what the student wrote; a prefix whose last statement is still open (a `for` header
with no body) is never complete, so it is never executed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from workers.sandbox.client import Sandbox
from workers.sandbox.limits import Limits
from workers.sandbox.result import SandboxResult, Status

Aggregate = Literal["min", "mean", "last"]

PREFIX_LIMITS = Limits(wall_seconds=0.5, memory_mb=512)
"""A prefix is a few lines of arithmetic: half a second is plenty, and a loop that needs more is
inconclusive rather than pruned."""

PRUNED_STATUSES = frozenset({Status.error, Status.syntax, Status.killed})


@dataclass(frozen=True)
class Step:
    """One completed step: the program up to and including it."""

    problem: int
    question: str
    prefix: str
    step_logprobs: tuple[float, ...]
    finished: bool


@dataclass(frozen=True)
class StepScore:
    keep: bool
    value: float | None = None
    reason: str | None = None


class StepScorer(Protocol):
    name: str
    aggregate: Aggregate
    weight: float

    def score(self, steps: Sequence[Step]) -> list[StepScore]: ...


@dataclass
class PrefixCache:
    """Sandbox results by exact prefix source. One cache per limits (the scorer owns its limits)."""

    results: dict[str, SandboxResult] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0

    def __len__(self) -> int:
        return len(self.results)


class ProgramRunner:
    """Runs programs in the sandbox under fixed limits, each distinct source once (the cache), all
    the sources of one call in one sandbox batch. `use_cache=False` sends every source every time
    (the baseline the benchmark compares against)."""

    def __init__(
        self, sandbox: Sandbox, limits: Limits, *, cache: PrefixCache | None = None, use_cache: bool = True
    ) -> None:
        self.sandbox = sandbox
        self.limits = limits
        self.cache = cache if cache is not None else PrefixCache()
        self.use_cache = use_cache
        self.sandbox_batches = 0
        self.programs_run = 0

    def run(self, sources: Sequence[str]) -> list[SandboxResult]:
        if not self.use_cache:
            if not sources:
                return []
            self.sandbox_batches += 1
            self.programs_run += len(sources)
            return self.sandbox.run_many(list(sources), self.limits)
        missing = list(dict.fromkeys(s for s in sources if s not in self.cache.results))
        self.cache.hits += len(sources) - len(missing)
        self.cache.misses += len(missing)
        if missing:
            self.sandbox_batches += 1
            self.programs_run += len(missing)
            for source, result in zip(missing, self.sandbox.run_many(missing, self.limits), strict=True):
                self.cache.results[source] = result
        return [self.cache.results[s] for s in sources]


class ExecutionScorer:
    name = "exec"
    aggregate: Aggregate = "last"
    weight = 0.0  # a filter: it prunes, it does not rank

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        limits: Limits = PREFIX_LIMITS,
        cache: PrefixCache | None = None,
        use_cache: bool = True,
    ) -> None:
        self.runner = ProgramRunner(sandbox, limits, cache=cache, use_cache=use_cache)

    @property
    def cache(self) -> PrefixCache:
        return self.runner.cache

    @property
    def programs_run(self) -> int:
        return self.runner.programs_run

    @property
    def sandbox_batches(self) -> int:
        return self.runner.sandbox_batches

    def score(self, steps: Sequence[Step]) -> list[StepScore]:
        scores = []
        for result in self.runner.run([s.prefix for s in steps]):
            if result.status in PRUNED_STATUSES:
                scores.append(StepScore(False, reason=f"{result.status.value}: {result.error_type}"))
            else:
                scores.append(StepScore(True, reason=None if result.status is Status.ok else result.status.value))
        return scores


class LogProbScorer:
    name = "logprob"
    aggregate: Aggregate = "min"

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def score(self, steps: Sequence[Step]) -> list[StepScore]:
        return [
            StepScore(True, sum(s.step_logprobs) / len(s.step_logprobs) if s.step_logprobs else 0.0) for s in steps
        ]


class VerifierModel(Protocol):
    def score(self, questions: Sequence[str], rationales: Sequence[str]) -> list[float]:
        """P(correct) of each (question, rationale)."""
        ...


class VerifierScorer:
    name = "verifier"
    aggregate: Aggregate = "last"

    def __init__(self, verifier: VerifierModel, weight: float = 1.0) -> None:
        self.verifier = verifier
        self.weight = weight

    def score(self, steps: Sequence[Step]) -> list[StepScore]:
        if not steps:
            return []
        probabilities = self.verifier.score([s.question for s in steps], [s.prefix for s in steps])
        return [StepScore(True, math.log(max(p, 1e-9))) for p in probabilities]


def aggregate(values: Sequence[float], how: Aggregate) -> float:
    if not values:
        return 0.0
    if how == "min":
        return min(values)
    if how == "last":
        return values[-1]
    return sum(values) / len(values)
