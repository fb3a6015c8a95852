"""`curation quickstart`: the main job on the embedded database, offline, from nothing."""

from __future__ import annotations

from typing import Annotated

import typer

from curation.cli.context import console, database
from curation.cli.quickstart_job import run_quickstart


def quickstart(
    problems: Annotated[int, typer.Option(help="Procedural training problems to create.")] = 200,
    generate_for: Annotated[int, typer.Option(help="Problems the embedded teacher writes programs for.")] = 4,
    samples: Annotated[int, typer.Option("--samples", "-D", help="Samples per problem.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the problems and of sampling.")] = 0,
    train_steps: Annotated[int, typer.Option(help="Fine-tuning steps of the student (0: stop after synthesis).")] = 80,
    eval_problems: Annotated[int, typer.Option(help="Held-out test problems evaluated before and after.")] = 50,
) -> None:
    """The whole loop, offline, on the embedded default: problems, teacher, sandbox, labels, a
    snapshot of reference rationales, the student evaluated before and after a short fine-tune."""
    db = database()
    console.print(f"database: {db.engine.url.render_as_string()}")
    summary = run_quickstart(
        db,
        problems=problems,
        generate_for=generate_for,
        samples=samples,
        seed=seed,
        train_steps=train_steps,
        eval_problems=eval_problems,
        echo=console.print,
    )
    console.print(summary)
