"""Step-wise beam search for program students (PaD's step-by-step verification, with execution).

Beam shape as in search-and-learn's beam search: `beams` (n) live beams per problem; after each
step the best n / M (M = `expand`) survive and each is copied M times, and each copy samples its
own next line, so n candidates are scored per problem per step (when pruning or dedupe leaves
fewer than n / M survivors, they are copied in turn back up to n). Every live beam of every problem
is extended in one batched generation call, and every completed step of every beam in one call
per scorer (for the execution scorer, one sandbox batch).

One iteration:
1. generate the next line of every live beam (sampled at `temperature`, stopping at a newline);
2. classify it (program_steps.py): invalid code is pruned; an open statement keeps growing
   (not scored, it competes with the score it had); a blank or comment line changes nothing;
   a complete line is a step;
3. drop duplicates: beams of one problem with the same program text are one beam (the one the
   model gave more probability is kept);
4. score every completed step with each scorer; a scorer can prune;
5. finished beams (a `def solution()` that returns, or EOS) leave the live set; of the rest, the
   top n / M by rank survive and are expanded M ways.
It stops when a problem has no live beam, has `beams` finished ones, or after `max_steps`
iterations. The answer is the finished beam of highest rank (else the best live one, marked
unfinished).

Rank of a beam = the model's mean token log-probability over the whole beam + Σ over scorers of
weight × the scorer's aggregate (min, mean or last) of its step values.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from trainer.decoding.generation import Continuation, LineSource
from trainer.decoding.program_steps import StepState, closes, returns_from_solution, step_state
from trainer.decoding.scorers import Step, StepScorer, aggregate

Finish = Literal["returned", "eos", "max-steps", "no-beam"]


@dataclass(frozen=True)
class BeamConfig:
    """beams: live beams per problem (n). expand: children per survivor (M); n must be a multiple.
    max_steps: generation iterations (lines) before the search stops. temperature: sampling
    temperature of each line. seed: the first line's seed; each iteration adds one."""

    beams: int = 4
    expand: int = 2
    max_steps: int = 24
    temperature: float = 0.8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.beams < 1 or self.expand < 1 or self.beams % self.expand:
            raise ValueError(f"beams ({self.beams}) must be a positive multiple of expand ({self.expand})")
        if self.max_steps < 1:
            raise ValueError("max_steps must be at least 1")

    @property
    def survivors(self) -> int:
        return self.beams // self.expand


@dataclass(frozen=True)
class Beam:
    problem: int
    lines: tuple[str, ...] = ()
    carry: str = ""  # whitespace the last token carried past its newline: the next line's start
    logprob_sum: float = 0.0
    tokens: int = 0
    pending: tuple[float, ...] = ()  # log-probabilities of the tokens since the last scored step
    step_values: tuple[tuple[str, float], ...] = ()  # (scorer name, value) per scored step
    steps: int = 0
    finished: Finish | None = None

    @property
    def program(self) -> str:
        return "".join(self.lines)

    def rank(self, scorers: Sequence[StepScorer]) -> float:
        total = self.logprob_sum / self.tokens if self.tokens else 0.0
        for scorer in scorers:
            values = [v for name, v in self.step_values if name == scorer.name]
            if values and scorer.weight:
                total += scorer.weight * aggregate(values, scorer.aggregate)
        return total


@dataclass(frozen=True)
class SearchProblem:
    prompt: str  # what the student sees; the program follows it directly
    question: str  # for the verifier


@dataclass(frozen=True)
class SearchResult:
    program: str
    finished: Finish
    rank: float
    steps: int
    candidates: int  # finished beams found for this problem
    tokens: int = 0  # tokens generated for this problem, over all its beams and steps


@dataclass
class SearchStats:
    iterations: int = 0
    lines_generated: int = 0
    pruned_invalid: int = 0
    pruned_by: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    steps_scored: int = 0
    seconds: float = 0.0


def _extend(beam: Beam, continuation: Continuation) -> Beam:
    line = beam.carry + continuation.text
    if continuation.ending != "newline" and line and not line.endswith("\n"):
        line += "\n"
    rest = continuation.rest
    carry = rest if rest and not rest.strip() and "\n" not in rest else ""
    return replace(
        beam,
        lines=(*beam.lines, line) if line else beam.lines,
        carry=carry,
        logprob_sum=beam.logprob_sum + sum(continuation.token_logprobs),
        tokens=beam.tokens + len(continuation.token_logprobs),
        pending=beam.pending + continuation.token_logprobs,
    )


def step_beam_search(
    source: LineSource,
    problems: Sequence[SearchProblem],
    scorers: Sequence[StepScorer],
    config: BeamConfig | None = None,
    stats: SearchStats | None = None,
) -> list[SearchResult]:
    config = config or BeamConfig()
    stats = stats if stats is not None else SearchStats()
    started = time.perf_counter()
    live: list[list[Beam]] = [[Beam(p)] * config.beams for p in range(len(problems))]
    done: list[list[Beam]] = [[] for _ in problems]
    spent = [0] * len(problems)
    for iteration in range(config.max_steps):
        active = [b for beams in live for b in beams]
        if not active:
            break
        stats.iterations += 1
        continuations = source.next_lines(
            [problems[b.problem].prompt + b.program + b.carry for b in active],
            temperature=config.temperature,
            seed=config.seed + iteration,
        )
        stats.lines_generated += len(active)
        candidates: list[tuple[Beam, bool]] = []  # (beam, has a new completed step)
        for beam, continuation in zip(active, continuations, strict=True):
            spent[beam.problem] += len(continuation.token_logprobs)
            grown = _extend(beam, continuation)
            line = grown.lines[-1] if len(grown.lines) > len(beam.lines) else ""
            state = step_state(grown.program, line)
            if continuation.ending == "eos":
                if not grown.program.strip() or not closes(grown.program):
                    stats.pruned_invalid += 1
                    continue
                candidates.append((replace(grown, finished="eos"), state is not StepState.blank))
                continue
            if state is StepState.invalid:
                stats.pruned_invalid += 1
                continue
            if state is StepState.complete and returns_from_solution(list(grown.lines)):
                grown = replace(grown, finished="returned")
            candidates.append((grown, state is StepState.complete))
        candidates = _deduplicated(candidates, scorers, stats)
        scored = [(b, new) for b, new in candidates if new]
        steps = [
            Step(b.problem, problems[b.problem].question, b.program, b.pending, b.finished is not None)
            for b, _ in scored
        ]
        stats.steps_scored += len(steps)
        verdicts = {id(b): b for b, _ in candidates}  # id -> beam as scored (or pruned: removed)
        for scorer in scorers:
            alive = [i for i, (b, _) in enumerate(scored) if id(b) in verdicts]
            results = scorer.score([steps[i] for i in alive])
            for i, result in zip(alive, results, strict=True):
                beam = scored[i][0]
                if not result.keep:
                    stats.pruned_by[scorer.name] = stats.pruned_by.get(scorer.name, 0) + 1
                    del verdicts[id(beam)]
                elif result.value is not None:
                    current = verdicts[id(beam)]
                    verdicts[id(beam)] = replace(
                        current, step_values=(*current.step_values, (scorer.name, result.value))
                    )
        survivors_by_problem: list[list[Beam]] = [[] for _ in problems]
        for beam, new in candidates:
            if id(beam) not in verdicts:
                continue
            kept = verdicts[id(beam)]
            kept = replace(kept, steps=kept.steps + 1, pending=()) if new else kept
            if kept.finished is not None:
                done[kept.problem].append(kept)
            else:
                survivors_by_problem[kept.problem].append(kept)
        for p, beams in enumerate(survivors_by_problem):
            if len(done[p]) >= config.beams:
                live[p] = []
                continue
            best = sorted(beams, key=lambda b: b.rank(scorers), reverse=True)[: config.survivors]
            # Each survivor gets M children; fewer survivors (after pruning or dedupe) share the n
            # places in turn, as search-and-learn copies its beams cyclically back up to n.
            live[p] = [best[i % len(best)] for i in range(config.beams)] if best else []
    stats.seconds += time.perf_counter() - started
    return [replace(_result(done[p], live[p], scorers), tokens=spent[p]) for p in range(len(problems))]


def _deduplicated(
    candidates: list[tuple[Beam, bool]], scorers: Sequence[StepScorer], stats: SearchStats
) -> list[tuple[Beam, bool]]:
    best: dict[tuple[int, str], tuple[Beam, bool]] = {}
    for beam, new in candidates:
        key = (beam.problem, beam.program + beam.carry)
        seen = best.get(key)
        if seen is None:
            best[key] = (beam, new)
            continue
        stats.duplicates += 1
        if beam.rank(scorers) > seen[0].rank(scorers):
            best[key] = (beam, new)
    return list(best.values())


def _result(finished: list[Beam], live: list[Beam], scorers: Sequence[StepScorer]) -> SearchResult:
    if finished:
        best = max(finished, key=lambda b: b.rank(scorers))
        return SearchResult(best.program, best.finished or "returned", best.rank(scorers), best.steps, len(finished))
    if live:
        best = max(live, key=lambda b: b.rank(scorers))
        return SearchResult(best.program, "max-steps", best.rank(scorers), best.steps, 0)
    return SearchResult("", "no-beam", float("-inf"), 0, 0)
