"""Step-verified decoding: what a step is, which prefixes run in the sandbox, pruning, the prefix
cache, dedupe and batching across problems. The model here is scripted (tests/support/scripted_lines.py):
these tests are about the search, not the model; test_decoding_model.py runs a real one."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from tests.support.scripted_lines import Candidate, ScriptedLines
from trainer.decoding.program_steps import StepState, returns_from_solution, step_state
from trainer.decoding.scorers import ExecutionScorer, LogProbScorer, PrefixCache, Step
from trainer.decoding.step_beam import BeamConfig, SearchProblem, SearchStats, step_beam_search
from workers.sandbox import Limits, Sandbox
from workers.sandbox.result import SandboxResult


class RecordingSandbox(Sandbox):
    """The real sandbox, remembering every batch it was given."""

    def __init__(self) -> None:
        super().__init__(in_flight=4)
        self.batches: list[list[str]] = []

    def run_many(self, programs: Sequence[str], limits: Limits | None = None) -> list[SandboxResult]:
        self.batches.append(list(programs))
        return super().run_many(programs, limits)

    @property
    def programs(self) -> list[str]:
        return [p for batch in self.batches for p in batch]


@pytest.fixture(scope="module")
def box() -> Iterator[RecordingSandbox]:
    sandbox = RecordingSandbox()
    try:
        yield sandbox
    finally:
        sandbox.close()


@pytest.fixture
def sandbox(box: RecordingSandbox) -> RecordingSandbox:
    box.batches.clear()
    return box


RAISES = "def solution():\n    apples = 12\n    per_box = apples / 0\n    return per_box\n"
UNDEFINED = "def solution():\n    apples = 12\n    per_box = apples / boxes\n    return per_box\n"
RUNS = "def solution():\n    apples = 12\n    per_box = apples / 3\n    return per_box\n"
LOOP = "def solution():\n    total = 0\n    for i in range(4):\n        total += i\n    return total\n"


def test_steps_are_lines_and_open_blocks_keep_growing() -> None:
    assert step_state("def solution():\n", "def solution():\n") is StepState.incomplete
    assert step_state("def solution():\n    a = 1\n", "    a = 1\n") is StepState.complete
    program = "def solution():\n    total = 0\n    for i in range(4):\n"
    assert step_state(program, "    for i in range(4):\n") is StepState.incomplete
    assert step_state(program + "        total += i\n", "        total += i\n") is StepState.complete
    assert step_state("def solution():\n    a = (1 +\n", "    a = (1 +\n") is StepState.incomplete
    assert step_state("def solution():\n    a = 1 +\n", "    a = 1 +\n") is StepState.invalid
    assert step_state("def solution():\n    a = 1\n      b = 2\n", "      b = 2\n") is StepState.invalid
    assert step_state("def solution():\n    a = 1\n\n", "\n") is StepState.blank
    assert returns_from_solution(RUNS.splitlines(keepends=True))
    nested = "def solution():\n    if True:\n        return 1\n"
    assert not returns_from_solution(nested.splitlines(keepends=True))
    assert not returns_from_solution(["x = 1\n", "return x\n"])


def test_prefix_execution_prunes_a_raising_step_and_keeps_a_running_one(sandbox: RecordingSandbox) -> None:
    scorer = ExecutionScorer(sandbox)
    steps = [
        Step(0, "q", "def solution():\n    apples = 12\n    per_box = apples / 0\n", (), False),
        Step(0, "q", "def solution():\n    apples = 12\n    per_box = apples / boxes\n", (), False),
        Step(0, "q", "def solution():\n    apples = 12\n    per_box = apples / 3\n", (), False),
    ]
    scores = scorer.score(steps)
    assert [s.keep for s in scores] == [False, False, True]
    assert scores[0].reason == "error: ZeroDivisionError"
    assert scores[1].reason == "error: NameError"
    assert sandbox.batches == [[s.prefix for s in steps]]  # one sandbox call for all of them


def test_search_prunes_the_likelier_beam_that_raises(sandbox: RecordingSandbox) -> None:
    # The model prefers the programs that raise; execution prunes them at the step that raises.
    scripts = {"Q1\n": [Candidate(RAISES, -0.1), Candidate(UNDEFINED, -0.1), Candidate(RUNS, -2.0)]}
    config = BeamConfig(beams=3, expand=1, max_steps=8)
    stats = SearchStats()
    [result] = step_beam_search(
        ScriptedLines(scripts), [SearchProblem("Q1\n", "Q1")], [ExecutionScorer(sandbox)], config, stats
    )
    assert result.program == RUNS
    assert result.finished == "returned"
    assert stats.pruned_by == {"exec": 2}
    # Without execution the model's favourite wins: the pruning is what changed the answer.
    [unverified] = step_beam_search(ScriptedLines(scripts), [SearchProblem("Q1\n", "Q1")], [], config)
    assert unverified.program in (RAISES, UNDEFINED)


def test_an_incomplete_for_block_is_never_executed(sandbox: RecordingSandbox) -> None:
    scripts = {"Q\n": [Candidate(LOOP)]}
    [result] = step_beam_search(
        ScriptedLines(scripts), [SearchProblem("Q\n", "Q")], [ExecutionScorer(sandbox)], BeamConfig(2, 1)
    )
    assert result.program == LOOP
    assert sandbox.programs == [
        "def solution():\n    total = 0\n",
        "def solution():\n    total = 0\n    for i in range(4):\n        total += i\n",
        LOOP,
    ]
    assert not any(p.endswith("range(4):\n") for p in sandbox.programs)


def test_prefix_cache_runs_no_prefix_twice(sandbox: RecordingSandbox) -> None:
    scripts = {"A\n": [Candidate(RUNS), Candidate(LOOP)], "B\n": [Candidate(RUNS)]}
    problems = [SearchProblem("A\n", "A"), SearchProblem("B\n", "B")]
    config = BeamConfig(beams=4, expand=2, max_steps=8)
    cache = PrefixCache()
    scorer = ExecutionScorer(sandbox, cache=cache)
    first = step_beam_search(ScriptedLines(scripts), problems, [scorer], config)
    run_once = sandbox.programs
    assert len(run_once) == len(set(run_once))  # problem B's prefixes are A's: run once, for both
    assert cache.hits > 0
    sandbox.batches.clear()
    again = step_beam_search(ScriptedLines(scripts), problems, [ExecutionScorer(sandbox, cache=cache)], config)
    assert sandbox.batches == []  # every prefix is in the cache
    assert [r.program for r in again] == [r.program for r in first]
    # Without the cache the same search sends the shared prefixes again.
    uncached = ExecutionScorer(sandbox, use_cache=False)
    step_beam_search(ScriptedLines(scripts), problems, [uncached], config)
    assert uncached.programs_run > len(run_once)


def test_identical_beams_are_one_and_problems_share_each_sandbox_call(sandbox: RecordingSandbox) -> None:
    scripts = {f"P{i}\n": [Candidate(RUNS), Candidate(LOOP)] for i in range(3)}
    problems = [SearchProblem(p, p.strip()) for p in scripts]
    stats = SearchStats()
    scorer = ExecutionScorer(sandbox, use_cache=False)
    lines = ScriptedLines(scripts)
    results = step_beam_search(lines, problems, [scorer], BeamConfig(beams=4, expand=2, max_steps=8), stats)
    assert stats.duplicates > 0  # four copies of the root write the same `def solution():` line
    assert all(r.finished == "returned" for r in results)
    assert {r.program for r in results} <= {RUNS, LOOP}
    assert scorer.sandbox_batches <= stats.iterations  # one sandbox batch per iteration, all problems in it
    assert lines.calls == stats.iterations  # and one generation call
    first = SearchStats()
    step_beam_search(ScriptedLines(scripts), problems, [], BeamConfig(beams=4, expand=2, max_steps=1), first)
    assert first.duplicates == 3 * 3  # per problem, three of the four root copies were duplicates


def test_logprob_scorer_ranks_by_the_least_confident_step() -> None:
    # One shaky step among confident ones: the better mean, the worse weakest step.
    shaky = Candidate(
        "def solution():\n    a = 2\n    b = a * 3\n    return b\n", line_logprobs=(-0.1, -0.1, -1.5, -0.1)
    )
    steady = Candidate(
        "def solution():\n    c = 5\n    d = c - 1\n    return d\n", line_logprobs=(-0.1, -0.6, -0.6, -0.6)
    )
    problems = [SearchProblem("Q\n", "Q")]
    config = BeamConfig(beams=2, expand=1, max_steps=6)
    [by_mean] = step_beam_search(ScriptedLines({"Q\n": [shaky, steady]}), problems, [], config)
    assert by_mean.program == shaky.program
    assert by_mean.rank == pytest.approx(-0.45)  # mean token log-probability
    [by_min] = step_beam_search(ScriptedLines({"Q\n": [shaky, steady]}), problems, [LogProbScorer()], config)
    assert by_min.program == steady.program
    assert by_min.rank == pytest.approx(-0.475 + -0.6)  # plus its weakest step


def test_beam_shape_is_validated() -> None:
    with pytest.raises(ValueError, match="multiple"):
        BeamConfig(beams=6, expand=4)
