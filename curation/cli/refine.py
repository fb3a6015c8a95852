"""`curation refine`: self-refinement rounds of a program student (trainer/refinement/ does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curation.cli.context import console, database


def refine(
    training_run: Annotated[int, typer.Option("--training-run", help="The student (a completed training run).")],
    split: Annotated[str, typer.Option("--split", help="A training split its failures are collected on.")] = "train",
    task: Annotated[str | None, typer.Option(help="Only this task's failures.")] = None,
    rounds: Annotated[int, typer.Option(help="Rounds in a row (a second one needs --train-steps).")] = 1,
    train_steps: Annotated[
        int, typer.Option(help="Fine-tune the student on the round's snapshot for N steps (0: build only).")
    ] = 0,
    evaluate_split: Annotated[
        str | None, typer.Option(help="Also evaluate each new run on this (evaluation) split.")
    ] = None,
    eval_limit: Annotated[int | None, typer.Option(help="Evaluate on the first N problems of each split.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per output when evaluating.")] = 256,
    batch_size: Annotated[int | None, typer.Option(help="Training batch size (default: the run's).")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Learning rate (default: the run's).")] = None,
    output_root: Annotated[
        Path | None, typer.Option(help="Folder for the new runs (default: <data>/training).")
    ] = None,
) -> None:
    """Collect the student's failed programs on a training split with the interpreter's feedback,
    store repairs (verified programs of the same problems, parent = the failure), snapshot them with
    the run's own data, and optionally train and evaluate the next student."""
    from trainer.refinement.rounds import RefineSpec
    from trainer.refinement.rounds import refine as run_refine

    spec = RefineSpec(
        training_run_id=training_run, split=split, task=task, rounds=rounds, train_steps=train_steps,
        evaluate_split=evaluate_split, eval_limit=eval_limit, max_new_tokens=max_new_tokens,
        batch_size=batch_size, learning_rate=learning_rate, output_root=output_root,
    )  # fmt: skip
    for report in run_refine(database(), spec, echo=console.print):
        console.print(report.line())
