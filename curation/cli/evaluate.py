"""`curation eval` and `curation report` (trainer/evaluation.py and trainer/report.py do the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from curation.cli.context import console, database


def evaluate(
    model: Annotated[
        str, typer.Option("--model", help="run:ID, a model folder, embedded, or openai:MODEL (with --base-url).")
    ],
    task: Annotated[str, typer.Option("--task", help="Task to evaluate on.")],
    split: Annotated[str, typer.Option("--split", help="Split to evaluate on (an evaluation split).")] = "test",
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server, for openai:MODEL.")] = None,
    format: Annotated[
        str | None, typer.Option("--format", help="Prompt format (default: the training run's, else ftcot).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="The first N problems of the split only.")] = None,
    batch_size: Annotated[int, typer.Option(help="Prompts per generation batch.")] = 16,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per output.")] = 256,
    repair_rounds: Annotated[
        int, typer.Option(help="Program students: repair outputs whose execution failed, up to N rounds.")
    ] = 0,
    decode: Annotated[str, typer.Option(help="greedy, sample (best-of-N) or step-beam.")] = "greedy",
    samples: Annotated[int, typer.Option(help="--decode sample: samples per problem (N).")] = 4,
    temperature: Annotated[float, typer.Option(help="--decode sample / step-beam: sampling temperature.")] = 0.8,
    select: Annotated[str, typer.Option(help="--decode sample: majority, exec-vote or verifier.")] = "majority",
    beams: Annotated[int, typer.Option(help="--decode step-beam: live beams per problem (N).")] = 4,
    expand: Annotated[int, typer.Option(help="--decode step-beam: children per surviving beam (M).")] = 2,
    scorer: Annotated[
        str, typer.Option(help="--decode step-beam: step scorers, comma-separated: exec, logprob, verifier.")
    ] = "exec",
    max_steps: Annotated[int, typer.Option(help="--decode step-beam: lines before the search stops.")] = 24,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    verifier: Annotated[
        Path | None, typer.Option(help="A trained verifier folder (curation verifier train --out), for verifier.")
    ] = None,
) -> None:
    """Outputs on a task split (greedy, best-of-N or step-beam), stored as generations and student
    rationales, verified, and scored."""
    from trainer.decoding.modes import Decoding
    from trainer.evaluation import EvalSpec
    from trainer.evaluation import evaluate as run_evaluation

    decoding = Decoding(
        method=decode, samples=samples, temperature=temperature, select=select, beams=beams, expand=expand,
        scorers=tuple(s.strip() for s in scorer.split(",") if s.strip()), max_steps=max_steps, seed=seed,
        verifier=str(verifier) if verifier else None,
    )  # fmt: skip
    spec = EvalSpec(
        model=model, task=task, split=split, base_url=base_url, prompt_format=format, limit=limit,
        batch_size=batch_size, max_new_tokens=max_new_tokens, repair_rounds=repair_rounds, decoding=decoding,
    )  # fmt: skip
    console.print(run_evaluation(database(), spec, echo=console.print).line())


def report(
    out: Annotated[Path | None, typer.Option(help="Folder for the PNG plots (default: <data dir>/report).")] = None,
) -> None:
    """Training runs x tasks: accuracy, snapshot version and size, base model, tokens, time; PNG plots."""
    from curation.settings import get_settings
    from trainer.report import collect_report, write_plots

    with database().read() as session:
        result = collect_report(session)
    table = Table(title="Training runs x tasks")
    for column in ("model", "task/split", "accuracy", "correct", "snapshot (rows)", "base model", "tokens", "time"):
        table.add_column(column)
    for row in result.rows:
        table.add_row(
            row.who if row.training_run_id is not None else f"{row.model} (as is)",
            f"{row.task}/{row.split}",
            f"{100 * (row.accuracy or 0):.1f}%",
            f"{row.correct}/{row.problems}",
            f"{row.snapshot} ({row.snapshot_rows})" if row.snapshot else "-",
            row.base_model or "-",
            f"{row.tokens_seen:,}" if row.tokens_seen is not None else "-",
            f"{row.train_seconds:.0f} s" if row.train_seconds is not None else "-",
        )
    console.print(table)
    folder = out or get_settings().data_dir / "report"
    written = write_plots(result, folder)
    console.print(f"plots: {folder.resolve()} ({', '.join(p.name for p in written) or 'nothing to plot yet'})")
