"""The `curation` command."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from curation.cli import (
    autoscale,
    db,
    evaluate,
    ingest,
    inspect,
    quickstart,
    references,
    refine,
    snapshot,
    synth,
    templates,
    train,
    verifier,
    verify,
)
from curation.cli.context import err_console, use_database_url
from curation.errors import CurationError

app = typer.Typer(
    help="A system of record for reasoning distillation: problems, teacher rationales, checks, datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    database_url: Annotated[
        str | None,
        typer.Option(envvar="CURATION_DATABASE_URL", help="SQLAlchemy URL (default: a SQLite file in the data dir)."),
    ] = None,
) -> None:
    use_database_url(database_url)


app.add_typer(db.app, name="db")
app.command("ingest")(ingest.ingest)
app.command("ingest-hf")(ingest.ingest_hf)
app.command("ingest-procedural")(ingest.ingest_procedural_command)
app.command("import-outputs")(ingest.import_outputs)
app.add_typer(references.app, name="references")
app.add_typer(snapshot.app, name="snapshot")
app.add_typer(templates.app, name="templates")
app.command("synth")(synth.synth)
app.add_typer(synth.runs_app, name="runs")
app.command("worker")(synth.worker)
app.command("supervise")(synth.supervise)
app.command("autoscale")(autoscale.autoscale)
app.command("verify")(verify.verify)
app.add_typer(verifier.app, name="verifier")
app.command("stats")(inspect.stats)
app.command("sql")(inspect.sql)
app.command("views")(inspect.views)
app.command("quickstart")(quickstart.quickstart)
app.command("train")(train.train)
app.command("eval")(evaluate.evaluate)
app.command("report")(evaluate.report)
app.command("refine")(refine.refine)


def main() -> None:
    from workers.sandbox.client import SandboxError

    try:
        app()
    except (CurationError, SandboxError) as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
