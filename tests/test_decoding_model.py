"""Decoding and the verifier with real transformers models: a tiny randomly initialised Llama with
SmolLM2's tokenizer (fast), and the bundled SmolLM2-135M itself (slow)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from curation.errors import CurationError
from curation.models import AnswerType
from tests.support.tiny_model import build_tiny_llama
from trainer.decoding.best_of_n import DecodeProblem, Selection, best_of_n
from trainer.decoding.generation import TransformersLineSource
from trainer.decoding.program_steps import closes
from trainer.decoding.scorers import ExecutionScorer, LogProbScorer, ProgramRunner, Step, VerifierScorer
from trainer.decoding.step_beam import BeamConfig, SearchProblem, SearchStats, step_beam_search
from trainer.verifier import LearnedVerifier, VerifierExample, VerifierTraining, train_verifier
from workers.sandbox import Limits, Sandbox
from workers.teachers.embedded_model import prepare_embedded_model


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(in_flight=4) as box:
        yield box


def test_recorded_logprobs_are_the_models_own_under_left_padding(tiny_model_dir: Path) -> None:
    import torch

    source = TransformersLineSource.from_pretrained(str(tiny_model_dir), device="cpu", max_line_tokens=8)
    contexts = ["Question: how many?\nSolution:\ndef solution():\n", "x"]  # very different lengths
    continuations = source.next_lines(contexts, temperature=1.0, seed=3)
    tokenizer, model = source.tokenizer, source.model
    for context, continuation in zip(contexts, continuations, strict=True):
        assert continuation.token_logprobs
        prompt_ids = tokenizer(context)["input_ids"]
        generated = tokenizer(continuation.text + continuation.rest, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + generated])
        with torch.inference_mode():
            logprobs = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
        n = min(len(generated), len(continuation.token_logprobs))
        expected = [float(logprobs[len(prompt_ids) + i - 1, generated[i]]) for i in range(n)]
        # Re-tokenizing decoded text can merge differently at the end; the first tokens must agree.
        assert continuation.token_logprobs[: max(1, n - 1)] == pytest.approx(expected[: max(1, n - 1)], abs=1e-3)


def test_step_beam_runs_end_to_end_on_a_real_model(tiny_model_dir: Path, sandbox: Sandbox) -> None:
    source = TransformersLineSource.from_pretrained(str(tiny_model_dir), device="cpu", max_line_tokens=8)
    problems = [SearchProblem(f"Question: what is {i} + 1?\nSolution:\n", f"what is {i} + 1?") for i in range(3)]
    executions = ExecutionScorer(sandbox)
    stats = SearchStats()
    results = step_beam_search(
        source, problems, [executions, LogProbScorer()], BeamConfig(beams=4, expand=2, max_steps=3), stats
    )
    assert len(results) == 3
    assert stats.iterations >= 1 and stats.lines_generated >= 12  # 3 problems x 4 beams in the first call
    assert source.calls == stats.iterations  # every beam of every problem in one generate call per step
    # Whatever random weights write, only complete, compiling prefixes reach the sandbox.
    assert all(closes(prefix) for prefix in executions.cache.results)


def _examples() -> list[VerifierExample]:
    right = "def solution():\n    result = 2 + 2\n    return result\n"
    wrong = "def solution():\n    result = 1 / 0\n    return result\n"
    return [
        VerifierExample(f"What is {i} and {i}?", right if i % 2 else wrong, bool(i % 2), f"rationale {i}")
        for i in range(8)
    ]


def test_verifier_trains_saves_and_scores(tiny_model_dir: Path, tmp_path: Path) -> None:
    examples = _examples()
    trained = train_verifier(
        tiny_model_dir, examples, tmp_path / "verifier", VerifierTraining(epochs=12, batch_size=4, learning_rate=3e-3)
    )
    assert trained.examples == 8 and trained.correct == 4
    assert trained.losses[-1] < trained.losses[0]
    assert trained.train_accuracy == 1.0  # 8 examples, two programs: it must fit them
    verifier = LearnedVerifier.load(tmp_path / "verifier")
    scores = verifier.score([e.question for e in examples], [e.rationale for e in examples])
    assert [s >= 0.5 for s in scores] == [e.correct for e in examples]
    # As a step scorer it adds log P(correct) of each prefix.
    [step] = VerifierScorer(verifier).score([Step(0, examples[1].question, examples[1].rationale, (), True)])
    assert step.keep and step.value == pytest.approx(math.log(scores[1]), abs=1e-4)


def test_verifier_refuses_one_sided_or_empty_data(tiny_model_dir: Path, tmp_path: Path) -> None:
    only_right = [e for e in _examples() if e.correct]
    with pytest.raises(CurationError, match="all 4 labelled rationales are correct"):
        train_verifier(tiny_model_dir, only_right, tmp_path / "v")
    with pytest.raises(CurationError, match="rationale 9: a verifier example needs"):
        train_verifier(tiny_model_dir, [*_examples(), VerifierExample("q", " ", False, "rationale 9")], tmp_path / "v")
    assert not (tmp_path / "v").exists()
    with pytest.raises(CurationError, match="not a trained verifier"):
        LearnedVerifier.load(tiny_model_dir)


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_embedded_model(tmp_path_factory.mktemp("models") / "SmolLM2-135M-Instruct")


PROMPT = (
    "Question: Tom reads 15 pages of a 180-page book every evening. After 5 evenings, how many pages are left?\n"
    "Solution:\ndef solution():\n    total_pages = 180\n    pages_per_evening = 15\n    evenings = 5\n"
    "    pages_read = pages_per_evening * evenings\n    result = total_pages - pages_read\n    return result\n\n"
    "Question: {question}\nSolution:\n"
)


@pytest.mark.slow
def test_smollm2_decodes_programs_by_step_beam_and_best_of_n(smollm2: Path, sandbox: Sandbox) -> None:
    source: Any = TransformersLineSource.from_pretrained(str(smollm2), device="cpu", max_line_tokens=24)
    question = "A box holds 12 eggs. How many eggs are in 3 boxes?"
    search = [SearchProblem(PROMPT.format(question=question), question)]
    executions = ExecutionScorer(sandbox)
    config = BeamConfig(beams=2, expand=1, max_steps=8, temperature=0.3)
    stats = SearchStats()
    [result] = step_beam_search(source, search, [executions], config, stats)
    assert stats.lines_generated >= 2 and source.calls == stats.iterations
    # An untrained 135M model, prompted with one exemplar, may write prose that is pruned as
    # invalid; whatever it writes, only compiling prefixes run, and a finished program compiles.
    assert all(closes(prefix) for prefix in executions.cache.results)
    if result.finished == "returned":
        assert result.program.startswith("def solution():\n") and closes(result.program)
        assert executions.cache.results[result.program].status.value == "ok"  # its last step ran
    else:
        assert stats.pruned_invalid + sum(stats.pruned_by.values()) > 0 or result.finished == "max-steps"
    decode = [DecodeProblem(search[0].prompt, question, AnswerType.number)]
    runner = ProgramRunner(sandbox, Limits(wall_seconds=2.0))
    [voted] = best_of_n(source, decode, 2, Selection.exec_vote, temperature=0.3, stop=("\nQuestion:",), runner=runner)
    assert len(voted.samples) == 2 and runner.programs_run <= 2
