"""`curation verify`: execute program rationales in the sandbox and label every rationale."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from curation.answers.verdict import VERIFIER_VERSION
from curation.cli.context import console, database, progress_bar
from curation.errors import CurationError


def verify(
    run: Annotated[
        int | None, typer.Option("--run", help="Verify this synthesis run (parsing its generations).")
    ] = None,
    rationale: Annotated[
        list[int] | None, typer.Option("--rationale", help="Verify this rationale; repeatable.")
    ] = None,
    pending: Annotated[
        bool, typer.Option("--pending", help="Verify everything this verifier version has not labelled.")
    ] = False,
    verifier_version: Annotated[
        str, typer.Option(help="Label version; a new one adds labels beside the old ones.")
    ] = VERIFIER_VERSION,
    timeout: Annotated[
        float | None,
        typer.Option(help="Wall-clock seconds per program (default: the run's own, with --run; else 2)."),
    ] = None,
    memory_mb: Annotated[
        int | None,
        typer.Option(help="Address-space limit per program, MB (default: the run's own, with --run; else 512)."),
    ] = None,
    in_flight: Annotated[
        int | None, typer.Option(help="Programs running at once (default 4 per CPU, fewer if memory is short).")
    ] = None,
) -> None:
    """Run programs in the sandbox and label rationales correct, incorrect, unparseable or error.

    With --run, programs run under the limits stored with the run (what its pipeline used), so
    the executions it already has are reused; --timeout and --memory-mb override them.
    Safe to repeat: what is labelled (for this version) is skipped, stored executions are reused.
    """
    if sum((run is not None, bool(rationale), pending)) != 1:
        raise CurationError("give exactly one of --run ID, --rationale ID or --pending")
    import dataclasses

    from workers.sandbox import Limits, Sandbox  # the sandbox is only needed here
    from workers.verification import verify as run_verification

    limits = _run_limits(run) if run is not None else Limits()
    overrides = {"wall_seconds": timeout, "memory_mb": memory_mb}
    limits = dataclasses.replace(limits, **{k: v for k, v in overrides.items() if v is not None})
    sandbox = Sandbox(limits, in_flight=in_flight)
    with sandbox, progress_bar("verifying") as bar:
        report = run_verification(
            database(),
            sandbox,
            run_id=run,
            rationale_ids=rationale or None,
            verifier_version=verifier_version,
            progress=lambda n: bar.advance(bar.task_ids[0], n),
        )
    console.print(f"sandbox limits: {limits.wall_seconds:g} s, {limits.memory_mb:,} MB per program")
    verdicts = ", ".join(f"{verdict} {count:,}" for verdict, count in sorted(report.verdicts.items()))
    console.print(
        f"parsed {report.parsed:,} generations, executed {report.executed:,} programs "
        f"(reused {report.reused_executions:,}), labelled {report.labelled:,} rationales"
        + (f": {verdicts}" if verdicts else "")
    )


def _run_limits(run_id: int) -> Any:
    """The sandbox limits stored with the run (defaults for runs that stored none, such as imports)."""
    from curation.repositories.runs import get_run
    from workers.sandbox import Limits

    with database().read() as session:
        params = get_run(session, run_id).params or {}
    return Limits.from_dict(params["limits"]) if params.get("limits") else Limits()
