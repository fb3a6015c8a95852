"""Best-of-N selections: majority of extracted answers, exec-vote over sandboxed programs, verifier."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from curation.models import AnswerType
from tests.support.scripted_lines import Candidate, ScriptedLines
from trainer.decoding.best_of_n import DecodeProblem, Sample, Selection, best_of_n, greedy, select
from trainer.decoding.scorers import ProgramRunner
from workers.sandbox import Limits, Sandbox


@pytest.fixture(scope="module")
def runner_sandbox() -> Iterator[Sandbox]:
    with Sandbox(in_flight=4) as box:
        yield box


def program(value: str) -> str:
    return f"def solution():\n    result = {value}\n    return result\n"


FAILS = "def solution():\n    result = 1 / 0\n    return result\n"
UNDEFINED = "def solution():\n    return missing + 1\n"


def test_exec_vote_drops_failures_then_takes_the_majority(runner_sandbox: Sandbox) -> None:
    scripts = {
        "P\n": [
            Candidate(FAILS, -0.1),
            Candidate(UNDEFINED, -0.1),
            Candidate(FAILS, -0.1),
            Candidate(program("7"), -0.9),
            Candidate(program("3 + 4"), -0.8),
            Candidate(program("5"), -0.2),
        ]
    }
    problem = DecodeProblem("P\n", "P", AnswerType.number)
    runner = ProgramRunner(runner_sandbox, Limits(wall_seconds=2.0))
    [voted] = best_of_n(ScriptedLines(scripts), [problem], 6, Selection.exec_vote, runner=runner)
    assert voted.answer == "7"
    assert voted.votes == 2
    assert voted.sample is not None and voted.sample.text == program("3 + 4")  # the likelier of the two 7s
    assert runner.programs_run == 5  # FAILS twice is one program: the runner's cache
    # Majority counts the failures as votes for "no answer": here they win.
    [majority] = best_of_n(ScriptedLines(scripts), [problem], 6, Selection.majority, runner=runner)
    assert majority.answer is None and majority.votes == 3
    assert runner.programs_run == 5  # the same six programs again: nothing new ran


def test_exec_vote_with_nothing_that_runs_selects_nothing(runner_sandbox: Sandbox) -> None:
    scripts = {"P\n": [Candidate(FAILS), Candidate(UNDEFINED)]}
    problem = DecodeProblem("P\n", "P", AnswerType.number)
    runner = ProgramRunner(runner_sandbox, Limits(wall_seconds=2.0))
    [voted] = best_of_n(ScriptedLines(scripts), [problem], 2, Selection.exec_vote, runner=runner)
    assert voted.sample is None and voted.answer is None


def test_majority_of_cot_answers_and_greedy() -> None:
    scripts = {
        "Q: two and two\nA:": [
            Candidate(" 2 + 2 = 4. The answer is 4.", -0.5),
            Candidate(" Two pairs make 5. The answer is 5.", -0.1),
            Candidate(" Doubling 2 gives 4. The answer is 4.", -0.7),
        ]
    }
    problem = DecodeProblem("Q: two and two\nA:", "two and two", AnswerType.number)
    [selected] = best_of_n(ScriptedLines(scripts), [problem], 3, Selection.majority)
    assert selected.answer == "4" and selected.votes == 2 and selected.index == 0
    [first] = greedy(ScriptedLines(scripts), [problem])
    assert first.answer == "4" and len(first.samples) == 1


def test_many_problems_share_one_generation_and_one_sandbox_batch(runner_sandbox: Sandbox) -> None:
    scripts = {f"P{i}\n": [Candidate(program(str(i))), Candidate(FAILS)] for i in range(4)}
    problems = [DecodeProblem(p, p.strip(), AnswerType.number) for p in scripts]
    lines = ScriptedLines(scripts)
    runner = ProgramRunner(runner_sandbox, Limits(wall_seconds=2.0))
    selected = best_of_n(lines, problems, 2, Selection.exec_vote, runner=runner)
    assert [s.answer for s in selected] == ["0", "1", "2", "3"]
    assert lines.calls == 1 and runner.sandbox_batches == 1


class PrefersDoubling:
    """A verifier for the selection test: trusts programs that multiply by two."""

    def score(self, questions: Sequence[str], rationales: Sequence[str]) -> list[float]:
        return [0.9 if "* 2" in r else 0.2 for r in rationales]


def test_verifier_selection_takes_the_highest_score() -> None:
    samples = [
        Sample(program("3 + 3"), -0.1, "6", True),
        Sample(program("3 * 2"), -0.9, "6", True),
        Sample(program("9"), -0.2, "9", True),
    ]
    chosen = select(samples, Selection.verifier, question="q", verifier=PrefersDoubling())
    assert chosen.index == 1 and chosen.votes == 2
    with pytest.raises(ValueError, match="needs a verifier"):
        select(samples, Selection.verifier)
    with pytest.raises(ValueError, match="exec-vote"):
        select([Sample("text", 0.0, "1")], Selection.exec_vote)
