"""`curation snapshot ...`: create, list, show, diff and export snapshot versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import select

from curation.cli.context import console, database, progress_bar
from curation.models import RationaleKind, RationaleOrigin, Snapshot
from curation.settings import get_settings
from curation.snapshots.create import create_snapshot, resolve_snapshot
from curation.snapshots.export import DEFAULT_ROW_GROUP, FILE_FORMATS, FORMATS, export_snapshot
from curation.snapshots.manifest import diff_snapshots
from curation.snapshots.spec import load_spec, parse_spec

app = typer.Typer(help="Immutable, content-addressed dataset versions, and their exports.", no_args_is_help=True)

Many = list[str] | None


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Snapshot name; each new content makes version NAME@N.")],
    spec_file: Annotated[Path | None, typer.Option("--spec", help="A JSON or YAML spec (flags override it).")] = None,
    task: Annotated[Many, typer.Option("--task", help="Task; repeatable.")] = None,
    split: Annotated[Many, typer.Option("--split", help="Split; repeatable.")] = None,
    run: Annotated[list[int] | None, typer.Option("--run", help="Synthesis run id; repeatable.")] = None,
    teacher: Annotated[Many, typer.Option("--teacher", help="Teacher (model name); repeatable.")] = None,
    template: Annotated[Many, typer.Option("--template", help="Template name; repeatable.")] = None,
    origin: Annotated[list[RationaleOrigin] | None, typer.Option("--origin", help="Origin; repeatable.")] = None,
    kind: Annotated[list[RationaleKind] | None, typer.Option("--kind", help="cot or program; repeatable.")] = None,
    verdict: Annotated[str | None, typer.Option(help="Verdict members must have (default correct; any).")] = None,
    verifier: Annotated[str | None, typer.Option(help="Only this verifier's labels count.")] = None,
    verifier_version: Annotated[str | None, typer.Option(help="Only labels of this verifier version.")] = None,
    max_per_problem: Annotated[int | None, typer.Option(help="At most K rationales per problem.")] = None,
    seed: Annotated[int | None, typer.Option(help="Salt of the canonical order within a problem.")] = None,
    dedupe: Annotated[str | None, typer.Option(help="none, exact (default) or near.")] = None,
    near_threshold: Annotated[float | None, typer.Option(help="Jaccard of word 3-grams for near (0.9).")] = None,
    min_chars: Annotated[int | None, typer.Option(help="Shortest rationale, characters.")] = None,
    max_chars: Annotated[int | None, typer.Option(help="Longest rationale, characters.")] = None,
    where: Annotated[str | None, typer.Option(help="SQL condition over the snapshot candidates' columns.")] = None,
    evaluation: Annotated[
        bool, typer.Option("--evaluation", help="An evaluation snapshot: evaluation splits only.")
    ] = False,
    drop_contaminated: Annotated[
        bool, typer.Option("--drop-contaminated", help="Leave out evaluation questions instead of refusing.")
    ] = False,
) -> None:
    """Freeze the rationales a spec selects as a new version (or find the version that has them)."""
    data: dict[str, Any] = load_spec(spec_file) if spec_file is not None else {}
    flags: dict[str, Any] = {
        "tasks": task, "splits": split, "runs": run, "teachers": teacher, "templates": template,
        "origins": [o.value for o in origin] if origin else None, "kinds": [k.value for k in kind] if kind else None,
        "verdict": verdict, "verifier": verifier, "verifier_version": verifier_version,
        "max_per_problem": max_per_problem, "seed": seed, "dedupe": dedupe, "near_threshold": near_threshold,
        "min_chars": min_chars, "max_chars": max_chars, "where": where,
    }  # fmt: skip
    data.update({key: value for key, value in flags.items() if value})
    if evaluation:
        data["purpose"] = "evaluation"
    if drop_contaminated:
        data["drop_contaminated"] = True
    spec = parse_spec(data)
    with database().transaction() as session:
        settings = get_settings()
        snapshot, created = create_snapshot(
            session, name, spec, sql_url=settings.sql_url, sql_timeout_s=settings.sql_timeout_s or None
        )
        ref, digest, rows, manifest = snapshot.ref, snapshot.content_sha256, snapshot.row_count, snapshot.manifest
    if not created:
        console.print(
            f"[bold]{ref}[/] already holds exactly this ({rows:,} members, sha256 {digest}): nothing written"
        )
        return
    counts = (manifest or {}).get("counts", {})
    console.print(f"created [bold]{ref}[/]: {rows:,} members, {counts.get('problems', 0):,} problems, sha256 {digest}")
    contamination = (manifest or {}).get("contamination", {})
    if contamination.get("dropped"):
        console.print(f"  left out {contamination['refused_problems']:,} evaluation problems (see snapshot show)")
    overlap = contamination.get("ngram_overlap", {})
    if overlap.get("training_questions"):
        console.print(
            f"  8-gram overlap with evaluation questions: {overlap['overlapping']:,} of "
            f"{overlap['training_questions']:,} training questions"
        )


@app.command("list")
def list_snapshots() -> None:
    """Every snapshot version."""
    with database().read() as session:
        rows = session.execute(select(Snapshot).order_by(Snapshot.name, Snapshot.version)).scalars().all()
        for s in rows:
            console.print(
                f"{s.ref:<30} {s.kind!s:<10} {s.row_count:>10,} members  {s.content_sha256[:16]}  "
                f"{s.created_at:%Y-%m-%d %H:%M}" + ("" if s.sealed else "  (unsealed)"),
                markup=False,
            )
        if not rows:
            console.print("no snapshots yet: curation snapshot create NAME ...")


@app.command("show")
def show(ref: Annotated[str, typer.Argument(help="NAME@N (or NAME for the newest version).")]) -> None:
    """A version's manifest (JSON)."""
    with database().read() as session:
        snapshot = resolve_snapshot(session, ref)
        manifest = snapshot.manifest or {"snapshot": snapshot.ref, "content_sha256": snapshot.content_sha256}
    typer.echo(json.dumps(manifest, indent=2, ensure_ascii=False))


@app.command("diff")
def diff(a: Annotated[str, typer.Argument(help="NAME@N")], b: Annotated[str, typer.Argument(help="NAME@M")]) -> None:
    """Problems and rationales added and removed from A to B, and member counts per task."""
    with database().read() as session:
        result = diff_snapshots(session, resolve_snapshot(session, a), resolve_snapshot(session, b))
    console.print(f"{result.a} -> {result.b}")
    console.print(f"  problems:   +{result.problems_added:,} -{result.problems_removed:,}")
    console.print(f"  rationales: +{result.rationales_added:,} -{result.rationales_removed:,}")
    for task, (before, after) in result.per_task.items():
        console.print(f"  {task}: {before:,} -> {after:,} members ({after - before:+,})")
    if result.examples_added:
        console.print(f"  e.g. added rationales {', '.join(map(str, result.examples_added))}")
    if result.examples_removed:
        console.print(f"  e.g. removed rationales {', '.join(map(str, result.examples_removed))}")


@app.command("export")
def export(
    ref: Annotated[str, typer.Argument(help="NAME@N (or NAME for the newest version).")],
    fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(FORMATS)}.")],
    out: Annotated[Path, typer.Option("--out", help="A new (or empty) directory for the files and manifest.json.")],
    file_format: Annotated[str, typer.Option(help=f"One of {', '.join(FILE_FORMATS)}.")] = "jsonl",
    tokenizer: Annotated[
        str | None, typer.Option(help="Tokenizer folder (for --format tokenized), e.g. a model's.")
    ] = None,
    row_group_size: Annotated[int, typer.Option(help="Rows per Parquet row group.")] = DEFAULT_ROW_GROUP,
) -> None:
    """Write a version in a training format, to JSONL or Parquet, with a manifest of the files."""
    with database().read() as session, progress_bar("exporting") as bar:
        manifest = export_snapshot(
            session, ref, fmt, out, file_format=file_format, tokenizer=tokenizer, row_group_size=row_group_size,
            progress=lambda n: bar.advance(bar.task_ids[0], n),
        )  # fmt: skip
    console.print(f"exported {manifest.snapshot} ({manifest.format}, {manifest.file_format}) to {out}:")
    for f in manifest.files:
        console.print(f"  {f.path}: {f.rows:,} rows, sha256 {f.sha256}", markup=False)
