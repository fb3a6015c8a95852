"""`curation references`: reference rationales (GSM8K's solutions, the procedural problems' own),
imported as a reference run and verified like any teacher output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curation.cli.context import console, database, progress_bar
from curation.references import (
    ReferenceReport,
    import_gsm8k_references,
    import_procedural_references,
    verdicts_by_kind,
)

app = typer.Typer(
    help="Reference rationales that need no teacher, verified like teacher output.", no_args_is_help=True
)

NoVerify = Annotated[bool, typer.Option("--no-verify", help="Only import; verify later with `curation verify`.")]


def _verify(run_id: int) -> None:
    from workers.sandbox import Limits, Sandbox
    from workers.verification import verify

    limits = Limits()
    with Sandbox(limits) as sandbox, progress_bar("verifying") as bar:
        report = verify(database(), sandbox, run_id=run_id, progress=lambda n: bar.advance(bar.task_ids[0], n))
    verdicts = ", ".join(f"{verdict} {count:,}" for verdict, count in sorted(report.verdicts.items()))
    console.print(
        f"executed {report.executed:,} programs (reused {report.reused_executions:,}), "
        f"labelled {report.labelled:,} rationales" + (f": {verdicts}" if verdicts else "")
    )
    with database().read() as session:
        for kind, verdict, status, count in verdicts_by_kind(session, run_id):
            console.print(f"  {kind:<8} {verdict:<12} {status or '-':<8} {count:>8,}")


def _print(report: ReferenceReport) -> None:
    console.print(
        f"[bold]{report.task}[/] reference run {report.run_id}: {report.problems:,} problems, "
        f"{report.cot:,} CoT and {report.programs:,} programs read, {report.new_rationales:,} new rationales"
    )
    if report.unmatched_records:
        console.print(f"  {report.unmatched_records:,} records match no stored problem (not imported)")
    for note, count in sorted(report.notes.items()):
        console.print(f"  {note}: {count:,}")


@app.command("gsm8k")
def gsm8k(
    files: Annotated[list[Path], typer.Argument(help="GSM8K JSONL files (train.jsonl, test.jsonl), ingested before.")],
    no_verify: NoVerify = False,
) -> None:
    """GSM8K's human solutions: the CoT text and a program derived from the calculator marks."""
    with database().transaction() as session:
        report = import_gsm8k_references(session, files)
    _print(report)
    if not no_verify:
        _verify(report.run_id)


@app.command("procedural")
def procedural(
    task: Annotated[str, typer.Option(help="The task the procedural problems were ingested as.")] = "procedural",
    no_verify: NoVerify = False,
) -> None:
    """The procedural problems' own reference CoT and program."""
    with database().transaction() as session:
        report = import_procedural_references(session, task)
    _print(report)
    if not no_verify:
        _verify(report.run_id)
