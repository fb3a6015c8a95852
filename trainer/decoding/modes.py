"""The decoding modes of `curation eval` beyond greedy: best-of-N sampling with a selection, and
step-verified beam search, run over one batch of problems at a time, returning every output to
store (trainer/evaluation.py stores them as generations and rationales).

- sample: N samples per problem (best_of_n.sample: one batched generation for the whole batch);
  every sample is an output (its own generation, sample_index 0..N-1), and the selected one is
  the evaluation's output for the problem. When exec-vote finds no sample that ran, the likeliest
  sample (mean token log-probability) is the output: it fails, and is counted as failing.
- step-beam: one output per problem, the program the search ended with (step_beam.py).

Token counts are the student's own (the tokens it generated, over every sample or beam of a
problem); latency is the batch's wall time shared equally by its problems (one batched call
serves them all); sandbox programs and batches are those run while decoding (the verifier's
runs afterwards are counted by the evaluation).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from curation.errors import CurationError
from curation.models import RationaleKind
from curation.templates import ProblemView
from trainer.decoding.best_of_n import DecodeProblem, Selection, sample, select
from trainer.decoding.generation import TransformersLineSource
from trainer.decoding.scorers import (
    ExecutionScorer,
    LogProbScorer,
    PrefixCache,
    ProgramRunner,
    StepScorer,
    VerifierModel,
    VerifierScorer,
)
from trainer.decoding.step_beam import BeamConfig, SearchProblem, step_beam_search
from workers.sandbox.limits import Limits

Method = Literal["greedy", "sample", "step-beam"]
METHODS: tuple[str, ...] = ("greedy", "sample", "step-beam")
SCORERS: tuple[str, ...] = ("exec", "logprob", "verifier")


@dataclass(frozen=True)
class Decoding:
    """How an evaluation decodes. `describe()` is what the evaluation row records (and finds
    itself again by): greedy records nothing more, so evaluations made before these modes are
    found again."""

    method: str = "greedy"
    samples: int = 4
    temperature: float = 0.8
    select: str = "majority"
    beams: int = 4
    expand: int = 2
    scorers: tuple[str, ...] = ("exec",)
    max_steps: int = 24
    seed: int = 0
    verifier: str | None = None  # a trained verifier folder (curation verifier train)

    def check(self, kind: RationaleKind, backend: str, *, encoder_decoder: bool = False) -> None:
        if self.method not in METHODS:
            raise CurationError(f"--decode {self.method!r}: one of {', '.join(METHODS)}")
        if self.method == "greedy":
            return
        if backend != "transformers":
            raise CurationError(f"--decode {self.method} runs the student locally: an openai:MODEL is greedy only")
        if encoder_decoder:  # the line source (generation.py) continues contexts with a causal LM
            raise CurationError(
                f"--decode {self.method} continues text with a causal LM: an encoder-decoder student (T5, CodeT5) "
                "is decoded greedily only, for now"
            )
        if self.method == "sample":
            if self.samples < 1:
                raise CurationError("--samples must be at least 1")
            if self.select not in {s.value for s in Selection}:
                raise CurationError(f"--select {self.select!r}: one of {', '.join(s.value for s in Selection)}")
            if self.select == Selection.exec_vote and kind is not RationaleKind.program:
                raise CurationError("--select exec-vote runs programs: the student writes CoT (format ftcot)")
            if self.select == Selection.verifier and not self.verifier:
                raise CurationError("--select verifier needs --verifier PATH (a trained verifier folder)")
            return
        if kind is not RationaleKind.program:
            raise CurationError(
                "--decode step-beam grows programs line by line: the student writes CoT (format ftcot)"
            )
        unknown = [s for s in self.scorers if s not in SCORERS]
        if unknown or not self.scorers:
            raise CurationError(f"--scorer {','.join(self.scorers)!r}: a comma-separated list of {', '.join(SCORERS)}")
        if "verifier" in self.scorers and not self.verifier:
            raise CurationError("--scorer verifier needs --verifier PATH (a trained verifier folder)")
        try:
            BeamConfig(self.beams, self.expand, self.max_steps, self.temperature, self.seed)
        except ValueError as error:
            raise CurationError(
                f"--beams {self.beams} --expand {self.expand} --max-steps {self.max_steps}: {error}"
            ) from None

    def uses_verifier(self) -> bool:
        return (self.method == "sample" and self.select == Selection.verifier) or (
            self.method == "step-beam" and "verifier" in self.scorers
        )

    def describe(self) -> dict[str, Any]:
        if self.method == "greedy":
            return {"method": "greedy"}
        verifier = {"verifier": str(Path(self.verifier).resolve())} if self.uses_verifier() and self.verifier else {}
        if self.method == "sample":
            shape = {"samples": self.samples, "temperature": self.temperature, "select": self.select}
            return {"method": "sample", **shape, "seed": self.seed, **verifier}
        shape = {"beams": self.beams, "expand": self.expand, "scorers": list(self.scorers)}
        return {
            "method": "step-beam", **shape, "max_steps": self.max_steps, "temperature": self.temperature,
            "seed": self.seed, **verifier,
        }  # fmt: skip


@dataclass(frozen=True)
class Output:
    """One generated output: sample `sample_index` of a problem; `selected`: the evaluation's
    output for that problem."""

    problem_id: int
    sample_index: int
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    selected: bool
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Cost:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    sandbox_programs: int = 0
    sandbox_batches: int = 0
    seconds: float = 0.0

    def add(self, other: Cost) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.sandbox_programs += other.sandbox_programs
        self.sandbox_batches += other.sandbox_batches
        self.seconds += other.seconds


@dataclass(frozen=True)
class BatchProblem:
    problem_id: int
    view: ProblemView
    prompt: str


class Decoder:
    """Runs one Decoding over batches of problems with a loaded student (and sandbox, verifier)."""

    def __init__(
        self,
        decoding: Decoding,
        kind: RationaleKind,
        source: TransformersLineSource,
        *,
        sandbox: Any = None,
        program_of: Callable[[str], str],
        stop: Sequence[str] = (),
        verifier: VerifierModel | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.decoding, self.kind, self.source = decoding, kind, source
        self.program_of, self.stop, self.verifier = program_of, tuple(stop), verifier
        self.runner: ProgramRunner | None = None
        self.exec_scorer: ExecutionScorer | None = None
        if decoding.method == "sample" and kind is RationaleKind.program:
            if sandbox is None:
                raise CurationError("sampling a program student needs a sandbox")
            self.runner = ProgramRunner(sandbox, limits or Limits(), cache=PrefixCache())
        self.scorers: list[StepScorer] = []
        if decoding.method == "step-beam":
            for name in decoding.scorers:
                if name == "exec":
                    if sandbox is None:
                        raise CurationError("the exec scorer needs a sandbox")
                    self.exec_scorer = ExecutionScorer(sandbox)
                    self.scorers.append(self.exec_scorer)
                elif name == "logprob":
                    self.scorers.append(LogProbScorer())
                else:
                    assert verifier is not None
                    self.scorers.append(VerifierScorer(verifier))

    def _sandbox_figures(self) -> tuple[int, int]:
        runner = self.runner or (self.exec_scorer.runner if self.exec_scorer else None)
        return (runner.programs_run, runner.sandbox_batches) if runner else (0, 0)

    def decode(self, batch: Sequence[BatchProblem]) -> tuple[list[Output], Cost]:
        programs_before, batches_before = self._sandbox_figures()
        started = time.perf_counter()
        sampling = self.decoding.method == "sample"
        outputs = self._sample(batch, started) if sampling else self._beam(batch, started)
        programs, batches = self._sandbox_figures()
        cost = Cost(
            prompt_tokens=sum(o.prompt_tokens for o in outputs),
            completion_tokens=sum(o.completion_tokens for o in outputs),
            sandbox_programs=programs - programs_before,
            sandbox_batches=batches - batches_before,
            seconds=time.perf_counter() - started,
        )
        return outputs, cost

    def _prompt_tokens(self, prompt: str) -> int:
        return len(self.source.tokenizer(prompt)["input_ids"])

    def _sample(self, batch: Sequence[BatchProblem], started: float) -> list[Output]:
        d = self.decoding
        problems = [DecodeProblem(b.prompt, b.view.question, b.view.answer_type, b.view.choices) for b in batch]
        rows = sample(
            self.source, problems, d.samples, temperature=d.temperature, seed=d.seed, stop=self.stop,
            runner=self.runner, program_of=self.program_of,
        )  # fmt: skip
        latency = 1000 * (time.perf_counter() - started) / max(1, len(batch))
        how = Selection(d.select)
        outputs = []
        for b, row in zip(batch, rows, strict=True):
            chosen = select(row, how, question=b.view.question, verifier=self.verifier)
            index, note = chosen.index, {}
            if index is None:  # exec-vote: no sample ran to a value
                index = max(range(len(row)), key=lambda i: row[i].mean_logprob)
                note = {"fallback": "no sample ran to a value: the likeliest is the output"}
            prompt_tokens = self._prompt_tokens(b.prompt)
            for i, s in enumerate(row):
                meta: dict[str, Any] = {"mean_logprob": s.mean_logprob, "answer": s.answer}
                if i == index:
                    meta.update({"selected": d.select, "votes": chosen.votes, **note})
                outputs.append(
                    Output(
                        b.problem_id,
                        i,
                        s.text,
                        s.ending,
                        prompt_tokens,
                        s.tokens,
                        latency / len(row),
                        i == index,
                        meta,
                    )
                )
        return outputs

    def _beam(self, batch: Sequence[BatchProblem], started: float) -> list[Output]:
        d = self.decoding
        config = BeamConfig(d.beams, d.expand, d.max_steps, d.temperature, d.seed)
        problems = [SearchProblem(b.prompt, b.view.question) for b in batch]
        results = step_beam_search(self.source, problems, self.scorers, config)
        latency = 1000 * (time.perf_counter() - started) / max(1, len(batch))
        return [
            Output(
                b.problem_id,
                0,
                r.program,
                r.finished,
                self._prompt_tokens(b.prompt),
                r.tokens,
                latency,
                True,
                {"rank": r.rank if r.rank != float("-inf") else None, "steps": r.steps, "candidates": r.candidates},
            )
            for b, r in zip(batch, results, strict=True)
        ]
