"""`curation templates`: list, add from files, add Fine-tune-CoT's few-shot prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from curation.cli.context import console, database
from curation.models import PromptTemplate, TemplateStyle
from curation.templates import BUILT_IN, add_few_shot_from_ftcot, add_template, ensure_built_in

app = typer.Typer(help="Prompt templates: immutable versions, rendered with Jinja2.", invoke_without_command=True)


@app.callback()
def templates(ctx: typer.Context) -> None:
    """List stored templates (built-ins are stored on first use)."""
    if ctx.invoked_subcommand is not None:
        return
    with database().transaction() as session:
        for name in BUILT_IN:
            ensure_built_in(session, name)
        rows = session.execute(select(PromptTemplate).order_by(PromptTemplate.name, PromptTemplate.version)).scalars()
        table = Table("name", "version", "style", "two stages", "first line")
        for row in rows:
            first = row.text.replace("{% raw %}", "").splitlines()[0] if row.text else ""
            table.add_row(row.name, str(row.version), row.style.value, "yes" if row.answer_text else "", first[:60])
    console.print(table)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Template name; adding changed text makes a new version.")],
    file: Annotated[Path, typer.Option(help="Jinja2 text of the (first) prompt.")],
    style: Annotated[TemplateStyle, typer.Option(help="zero_shot_cot, few_shot_cot or program.")],
    answer_file: Annotated[Path | None, typer.Option(help="Second stage (zero-shot-CoT).")] = None,
) -> None:
    """Store a template from files (checked by rendering a sample problem first)."""
    with database().transaction() as session:
        row = add_template(
            session,
            name=name,
            style=style,
            text=file.read_text(),
            answer_text=answer_file.read_text() if answer_file else None,
        )
        console.print(f"template {row.name} v{row.version} ({row.style.value})")


@app.command("add-few-shot")
def add_few_shot(
    prompts: Annotated[Path, typer.Option(help="Fine-tune-CoT's few_shot_cot_prompts.json.")],
    task: Annotated[list[str], typer.Option(help="Task whose exemplars to use; repeatable.")],
) -> None:
    """Few-shot CoT templates (few-shot-cot-<task>) from Fine-tune-CoT's prompt file."""
    with database().transaction() as session:
        for name in task:
            row = add_few_shot_from_ftcot(session, prompts, name)
            console.print(f"template {row.name} v{row.version}")
