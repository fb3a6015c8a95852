"""Decoding cost: greedy, best-of-N and step-verified beam search on the same student, in one run.

    python bench/decode.py [--problems 8] [--samples 4] [--beams 4] [--expand 2] [--max-steps 14]
                           [--model tiny | smollm2 | PATH] [--train-steps 300]

The student, by default (`tiny`), is a 2-layer Llama (hidden size 64, SmolLM2's tokenizer)
trained here for `--train-steps` steps on the reference programs of procedural problems (other
problems than the ones decoded): a real, weak program student that fits this machine's CPUs.
`smollm2` is the bundled SmolLM2-135M-Instruct prompted with one PaD exemplar; PATH any causal
LM folder (prompted the same way). Problems are procedural word problems with exact answers. For each method it prints
problems/s, sandbox programs and batches per problem, generated tokens per problem, accuracy,
and the ratio of each against greedy measured in the same run. Step-beam runs twice with the same
seed, with and without the prefix cache: the searches are identical (checked), only the sandbox
work differs. Every final program is run once more under the evaluation limits (2 s), which
counts in the sandbox figures.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curation.answers.extract import answer_from_program_value
from curation.answers.match import answers_match
from curation.models import AnswerType
from curation.procedural import procedural_problems
from trainer.decoding.best_of_n import DecodeProblem, Selection, best_of_n, greedy
from trainer.decoding.generation import TransformersLineSource
from trainer.decoding.scorers import ExecutionScorer, ProgramRunner
from trainer.decoding.step_beam import BeamConfig, SearchProblem, SearchStats, step_beam_search
from workers.sandbox import Limits, Sandbox
from workers.sandbox.result import Status

PROMPT = (
    "Question: Tom reads 15 pages of a 180-page book every evening. After 5 evenings, how many pages are left?\n"
    "Solution:\ndef solution():\n    total_pages = 180\n    pages_per_evening = 15\n    evenings = 5\n"
    "    pages_read = pages_per_evening * evenings\n    result = total_pages - pages_read\n    return result\n\n"
    "Question: {question}\nSolution:\n"
)
STOP = ("\nQuestion:", "\n\n\n")
EVALUATION_LIMITS = Limits(wall_seconds=2.0)
Decoder = Callable[[ProgramRunner], list[str | None]]


@dataclass
class Row:
    method: str
    seconds: float
    programs: int  # programs the sandbox ran
    batches: int
    tokens: int
    correct: int


TINY_PROMPT = "Question: {question}\nSolution:\n"


def train_tiny(model: Any, tokenizer: Any, steps: int) -> float:
    """Fine-tune the tiny student on reference programs of procedural problems; the last loss."""
    import torch

    texts = [
        TINY_PROMPT.format(question=p.question) + (p.meta or {})["reference_program"] + tokenizer.eos_token
        for p in procedural_problems(steps * 4, seed=1000)
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    loss = float("nan")
    for step in range(steps):
        batch = tokenizer(texts[step * 4 : step * 4 + 4], return_tensors="pt", padding=True)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        output = model(**batch, labels=labels)
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        loss = float(output.loss.detach())
    model.eval()
    return loss


def load_source(model: str, train_steps: int) -> tuple[TransformersLineSource, str]:
    if model != "tiny":
        if model == "smollm2":
            from workers.teachers.embedded_model import prepare_embedded_model

            model = str(prepare_embedded_model())
        source = TransformersLineSource.from_pretrained(model, max_line_tokens=32, max_program_tokens=160)
        return source, PROMPT
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from workers.teachers.embedded_model import gguf_path

    gguf = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        eos_token_id=tokenizer.eos_token_id,
    )
    student = LlamaForCausalLM(config)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    started = time.perf_counter()
    loss = train_tiny(student, tokenizer, train_steps)
    print(f"tiny student: {train_steps} training steps in {time.perf_counter() - started:.0f} s, last loss {loss:.3f}")
    return TransformersLineSource(student, tokenizer, max_line_tokens=32, max_program_tokens=160), TINY_PROMPT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4, help="N of best-of-N")
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--expand", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=14)
    parser.add_argument("--model", default="tiny", help="tiny (default), smollm2, or a model folder")
    parser.add_argument("--train-steps", type=int, default=300, help="training steps of the tiny student")
    args = parser.parse_args()

    source, prompt = load_source(args.model, args.train_steps)
    parsed = list(procedural_problems(args.problems, seed=7))
    golds = [str(p.gold) for p in parsed]
    decode = [DecodeProblem(prompt.format(question=p.question), p.question, AnswerType.number) for p in parsed]
    search = [SearchProblem(d.prompt, d.question) for d in decode]
    rows: list[Row] = []
    with Sandbox() as sandbox:
        sandbox.run("x = 1")  # start the fork server outside the timings

        def measure(
            method: str, decode_fn: Callable[[ProgramRunner], list[str | None]], runs: list[ProgramRunner]
        ) -> None:
            tokens_before = source.generated_tokens
            started = time.perf_counter()
            evaluation = ProgramRunner(sandbox, EVALUATION_LIMITS)
            answers = decode_fn(evaluation)
            seconds = time.perf_counter() - started
            correct = sum(
                a is not None and answers_match(a, g, AnswerType.number) for a, g in zip(answers, golds, strict=True)
            )
            everything = [evaluation, *runs]
            rows.append(
                Row(
                    method,
                    seconds,
                    sum(r.programs_run for r in everything),
                    sum(r.sandbox_batches for r in everything),
                    source.generated_tokens - tokens_before,
                    correct,
                )
            )

        measure("greedy", lambda ev: [s.answer for s in greedy(source, decode, stop=STOP, runner=ev)], [])
        measure(
            f"best-of-{args.samples}, exec-vote",
            lambda ev: [
                s.answer for s in best_of_n(source, decode, args.samples, Selection.exec_vote, stop=STOP, runner=ev)
            ],
            [],
        )
        config = BeamConfig(beams=args.beams, expand=args.expand, max_steps=args.max_steps)
        programs: dict[bool, list[str]] = {}
        for use_cache in (True, False):
            scorer = ExecutionScorer(sandbox, use_cache=use_cache)
            stats = SearchStats()

            def beam(
                ev: ProgramRunner, scorer: ExecutionScorer = scorer, stats: SearchStats = stats, c: bool = use_cache
            ) -> list[str | None]:
                results = step_beam_search(source, search, [scorer], config, stats)
                programs[c] = [r.program for r in results]
                ran = ev.run([r.program for r in results])
                return [
                    answer_from_program_value(x.value, AnswerType.number) if x.status is Status.ok else None
                    for x in ran
                ]

            label = f"step-beam n={args.beams} M={args.expand}, exec, {'prefix cache' if use_cache else 'no cache'}"
            measure(label, beam, [scorer.runner])
            print(
                f"  [{label}] iterations {stats.iterations}, lines {stats.lines_generated}, pruned invalid "
                f"{stats.pruned_invalid}, pruned by exec {stats.pruned_by.get('exec', 0)}, duplicates "
                f"{stats.duplicates}, steps scored {stats.steps_scored}, cache hits {scorer.cache.hits}"
            )
    if programs[True] != programs[False]:
        print("  WARNING: the cached and uncached searches chose different programs")
    n = args.problems
    base = rows[0]
    student = {"tiny": f"tiny Llama trained {args.train_steps} steps", "smollm2": "SmolLM2-135M-Instruct"}.get(
        args.model, Path(args.model).name
    )
    print(f"\n{n} procedural problems, student: {student}, sandbox in_flight={sandbox.in_flight}\n")
    header = (
        f"{'method':<50} {'problems/s':>10} {'vs greedy':>9} {'programs/pb':>11} {'batches/pb':>10} "
        f"{'tokens/pb':>9} {'accuracy':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        rate = n / row.seconds
        print(
            f"{row.method:<50} {rate:>10.3f} {rate / (n / base.seconds):>8.2f}x {row.programs / n:>11.1f} "
            f"{row.batches / n:>10.2f} {row.tokens / n:>9.0f} {row.correct}/{n:>3}"
        )


if __name__ == "__main__":
    main()
