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
) -> None:
    """The whole loop, offline, on the embedded default: problems, teacher, sandbox, labels."""
    db = database()
    console.print(f"database: {db.engine.url.render_as_string()}")
    summary = run_quickstart(
        db, problems=problems, generate_for=generate_for, samples=samples, seed=seed, echo=console.print
    )
    console.print(summary)
