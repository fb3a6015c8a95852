"""Looking at the data: headline counts, SQL, and the views."""

from __future__ import annotations

import csv
import enum
import json
import sys
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from curation.cli.context import console, database
from curation.sql_console import QueryResult, run_sql, view_names
from curation.stats import collect_stats


class OutputFormat(enum.StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _json_value(value: Any) -> Any:
    # PostgreSQL returns NUMERIC aggregates as Decimal; JSON readers want numbers.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_result(result: QueryResult, output: OutputFormat) -> None:
    if output is OutputFormat.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    elif output is OutputFormat.json:
        for row in result.rows:
            record = {column: _json_value(value) for column, value in zip(result.columns, row, strict=True)}
            sys.stdout.write(json.dumps(record) + "\n")
    else:
        table = Table(*result.columns, show_lines=False)
        for row in result.rows:
            table.add_row(*(_cell(v) for v in row))
        console.print(table)
        if result.truncated:
            console.print(f"(first {len(result.rows)} rows; use --limit 0 for all)", style="dim")


def sql(
    statement: Annotated[str, typer.Argument(help='A query, e.g. "SELECT * FROM quality".')],
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table, csv or json (one object per line).")
    ] = OutputFormat.table,
    limit: Annotated[int, typer.Option(help="Most rows to print; 0 for all.")] = 200,
) -> None:
    """Run one SQL statement, read-only (the database refuses writes), and print the rows.

    On PostgreSQL it runs as a role that can only read: CURATION_SQL_URL, or the curation_reader
    role the migrations create; a superuser's session is never used (see docs/sql.md).
    """
    from curation.settings import get_settings

    settings = get_settings()
    result = run_sql(
        database(),
        statement,
        limit=limit or None,
        sql_url=settings.sql_url,
        timeout_s=settings.sql_timeout_s or None,
    )
    _print_result(result, output)


def views() -> None:
    """List the SQL views (see docs/sql.md for what each holds and example queries)."""
    with database().read() as session:
        for name in view_names(session):
            console.print(name)


def stats() -> None:
    """Headline counts: problems per task and split, runs, generations, labels, ..."""
    with database().read() as session:
        s = collect_stats(session)
    table = Table("task", "split", "purpose", "problems", title="problems")
    for task, split, purpose, count in s.problems:
        table.add_row(task, split, purpose, f"{count:,}")
    console.print(table)
    console.print(f"problems: {s.total_problems:,}")

    def line(title: str, counts: dict[str, int]) -> None:
        total = sum(counts.values())
        detail = ", ".join(f"{k} {v:,}" for k, v in counts.items())
        console.print(f"{title}: {total:,}" + (f"  ({detail})" if detail else ""))

    line("synthesis runs", s.runs)
    line("generations", s.generations)
    line("rationales", s.rationales)
    line("executions", s.executions)
    line("labels", s.labels)
    console.print(f"snapshots: {s.snapshots:,}   training runs: {s.training_runs:,}   evaluations: {s.evaluations:,}")
