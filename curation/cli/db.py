"""`curation db ...`: schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from curation.cli.context import console, database
from curation.db import migrations

app = typer.Typer(help="Create and migrate the database schema.", no_args_is_help=True)


@app.command()
def upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    db = database()
    migrations.upgrade(db, revision)
    url = db.engine.url.render_as_string()
    console.print(f"database at revision [bold]{migrations.current_revision(db)}[/] ({url})")


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base' for an empty database.")],
) -> None:
    """Revert migrations down to REVISION."""
    db = database()
    migrations.downgrade(db, revision)
    console.print(f"database at revision [bold]{migrations.current_revision(db) or 'base'}[/]")


@app.command()
def current() -> None:
    """Show the database's revision and the newest one available."""
    db = database()
    console.print(f"current: {migrations.current_revision(db) or 'base (empty)'}   head: {migrations.head_revision()}")
