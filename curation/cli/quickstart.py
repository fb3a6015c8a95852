"""`curation quickstart`: the main job on the embedded database, offline, from nothing."""

from __future__ import annotations

from typing import Annotated

import typer

from curation.cli.context import console, database
from curation.quickstart import run_quickstart


def quickstart(
    problems: Annotated[int, typer.Option(help="Procedural training problems to create.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the procedural problems.")] = 0,
) -> None:
    """Create the schema, generate problems, and show the state of the system of record."""
    db = database()
    console.print(f"database: {db.engine.url.render_as_string()}")
    summary = run_quickstart(db, problems=problems, seed=seed, echo=console.print)
    console.print(summary)
