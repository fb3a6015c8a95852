"""Best-of-N: sample N rationales per problem (every sample of every problem in one batched
generation), then pick one. The strong simple baseline any search must beat.

Selections:
- majority: the most frequent answer of the N, where a sample with no answer is a vote for "no
  answer" (so a student that mostly fails selects a failure). A CoT sample's answer is extracted
  from its text (curation.answers); a program's answer is the value it returns in the sandbox,
  read as the problem's answer type.
- exec-vote (programs): every sample runs in the sandbox; those that fail, time out or return no
  value of the answer type are dropped; the majority of the remaining values wins.
- verifier: the sample the learned verifier gives the highest P(correct).
Ties go to the answer whose best sample the model found likeliest (mean token log-probability).
Greedy decoding is `greedy`: one sample per problem at temperature 0.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from curation.answers.extract import answer_from_program_value, extract_cot_answer
from curation.models import AnswerType
from trainer.decoding.generation import LineSource
from trainer.decoding.scorers import ProgramRunner, VerifierModel
from workers.sandbox.result import Status

Choice = dict[str, str]


class Selection(enum.StrEnum):
    majority = "majority"
    exec_vote = "exec-vote"
    verifier = "verifier"


@dataclass(frozen=True)
class DecodeProblem:
    prompt: str
    question: str
    answer_type: AnswerType
    choices: list[Choice] | None = None


@dataclass(frozen=True)
class Sample:
    text: str
    mean_logprob: float
    answer: str | None  # canonical answer (None: none found, or the program failed)
    ran: bool | None = None  # programs: whether it ran to a value (None for CoT)
    tokens: int = 0  # tokens generated
    ending: str | None = None  # why generation stopped (eos, stop, length)


@dataclass(frozen=True)
class Selected:
    sample: Sample | None  # None: nothing to select (every sample failed under exec-vote)
    index: int | None
    votes: int
    samples: tuple[Sample, ...]

    @property
    def answer(self) -> str | None:
        return self.sample.answer if self.sample else None


def sample(
    source: LineSource,
    problems: Sequence[DecodeProblem],
    n: int,
    *,
    temperature: float,
    seed: int = 0,
    stop: Sequence[str] = (),
    runner: ProgramRunner | None = None,
    program_of: Callable[[str], str] | None = None,
) -> list[list[Sample]]:
    """N samples per problem. With a runner the samples are programs and are run (one sandbox
    batch for all problems; `program_of` takes the program out of a sample's text, as the
    verifier will); without one they are CoT text and their answers are extracted."""
    contexts = [p.prompt for p in problems for _ in range(n)]
    continuations = source.complete(contexts, temperature=temperature, seed=seed, stop=stop)
    extract = program_of or (lambda text: text)
    results = runner.run([extract(c.text) for c in continuations]) if runner is not None else None
    out: list[list[Sample]] = []
    for p, problem in enumerate(problems):
        row = []
        for i in range(n):
            k = p * n + i
            text, made = continuations[k].text, continuations[k]
            tokens = len(made.token_logprobs)
            if results is None:
                answer = extract_cot_answer(text, problem.answer_type, choices=problem.choices, student=True).answer
                row.append(Sample(text, made.mean_logprob, answer, None, tokens, made.ending))
                continue
            result = results[k]
            value = answer_from_program_value(result.value, problem.answer_type, problem.choices)
            ran = result.status is Status.ok and value is not None
            row.append(Sample(text, made.mean_logprob, value if ran else None, ran, tokens, made.ending))
        out.append(row)
    return out


def greedy(
    source: LineSource,
    problems: Sequence[DecodeProblem],
    *,
    stop: Sequence[str] = (),
    runner: ProgramRunner | None = None,
) -> list[Selected]:
    rows = sample(source, problems, 1, temperature=0.0, stop=stop, runner=runner)
    return [Selected(row[0], 0, 1, tuple(row)) for row in rows]


def _vote(samples: Sequence[Sample], eligible: list[int]) -> Selected:
    if not eligible:
        return Selected(None, None, 0, tuple(samples))
    counts = Counter(samples[i].answer for i in eligible)
    best_of: dict[str | None, int] = {}
    for i in eligible:
        answer = samples[i].answer
        if answer not in best_of or samples[i].mean_logprob > samples[best_of[answer]].mean_logprob:
            best_of[answer] = i
    winner = max(counts, key=lambda a: (counts[a], samples[best_of[a]].mean_logprob))
    index = best_of[winner]
    return Selected(samples[index], index, counts[winner], tuple(samples))


def select(
    samples: Sequence[Sample],
    how: Selection,
    *,
    question: str = "",
    verifier: VerifierModel | None = None,
) -> Selected:
    if how is Selection.majority:
        return _vote(samples, list(range(len(samples))))
    if how is Selection.exec_vote:
        if any(s.ran is None for s in samples):
            raise ValueError("exec-vote needs program samples that were run")
        return _vote(samples, [i for i, s in enumerate(samples) if s.ran])
    if verifier is None:
        raise ValueError("verifier selection needs a verifier")
    scores = verifier.score([question] * len(samples), [s.text for s in samples])
    index = max(range(len(samples)), key=lambda i: (scores[i], samples[i].mean_logprob))
    votes = sum(1 for s in samples if s.answer == samples[index].answer)
    return Selected(samples[index], index, votes, tuple(samples))


def best_of_n(
    source: LineSource,
    problems: Sequence[DecodeProblem],
    n: int,
    how: Selection,
    *,
    temperature: float = 0.8,
    seed: int = 0,
    stop: Sequence[str] = (),
    runner: ProgramRunner | None = None,
    verifier: VerifierModel | None = None,
) -> list[Selected]:
    rows = sample(source, problems, n, temperature=temperature, seed=seed, stop=stop, runner=runner)
    return [
        select(row, how, question=problem.question, verifier=verifier)
        for problem, row in zip(problems, rows, strict=True)
    ]
