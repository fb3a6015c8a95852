"""What every command shares: the console and the database chosen on the command line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from curation.db.session import Database
from curation.settings import get_settings

# Piped output (files, CI logs, `| less`) gets a wide console so tables are not cut to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 250)
# Errors are never wrapped: a path cut in two cannot be copied back into a shell.
err_console = Console(stderr=True, soft_wrap=True)

_database_url: str | None = None
_database: Database | None = None


def use_database_url(url: str | None) -> None:
    global _database_url, _database
    _database_url, _database = url, None


def database() -> Database:
    global _database
    if _database is None:
        _database = Database(_database_url or get_settings().database_url)
    return _database


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Progress]:
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if total is not None:
        columns.append(TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=False, disable=not err_console.is_terminal) as bar:
        bar.add_task(description, total=total)
        yield bar
