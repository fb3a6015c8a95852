"""Commands that bring problems and published teacher outputs into the database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curation.cli.context import console, database, progress_bar
from curation.ingestion.formats import FORMATS, ColumnMapping
from curation.ingestion.service import IngestReport, ingest_files, ingest_hub, ingest_procedural
from curation.models import AnswerType, SplitPurpose, TemplateStyle
from curation.teacher_outputs import OutputFields, import_teacher_outputs

Mapping = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        help="Column mapping FIELD=COLUMN (FIELD: question, answer, id, choices, rationale); repeatable.",
    ),
]
Purpose = Annotated[
    SplitPurpose | None,
    typer.Option(help="train or eval (default: train for splits named train*, else eval)."),
]
NewAnswerType = Annotated[AnswerType | None, typer.Option(help="Answer type, when defining a new task.")]


def _print_report(report: IngestReport) -> None:
    splits = ", ".join(f"{split} {count:,}" for split, count in sorted(report.per_split.items()))
    console.print(
        f"[bold]{report.task}[/]: read {report.read:,}, new {report.inserted:,}, "
        f"already stored {report.unchanged:,}" + (f"  ({splits})" if splits else "")
    )
    for reason, count in report.skipped.items():
        console.print(f"  skipped {count:,}: {reason}")
    for example in report.skip_examples:
        console.print(f"    e.g. {example}", style="dim", markup=False)
    if report.eval_overlap_count:
        # A warning, not an error: a benchmark's copy (PAL's GSM8K) may rightly share questions.
        console.print(
            f"  [yellow]warning[/]: {report.eval_overlap_count:,} train-split problems have the question of an "
            "evaluation problem (same content_hash); they must not be trained on"
        )
        for example in report.eval_overlap_examples:
            console.print(f"    e.g. {example}", style="dim", markup=False)


def ingest(
    task: Annotated[str, typer.Argument(help="Task: gsm8k, svamp, ... or a new name with --format/--answer-type.")],
    paths: Annotated[list[Path], typer.Argument(help="Files to read, in order.")],
    split: Annotated[str | None, typer.Option(help="Put every record in this split.")] = None,
    ftcot_split: Annotated[
        Path | None, typer.Option(help="A Fine-tune-CoT split file (ftcot/split/<task>__default.json).")
    ] = None,
    purpose: Purpose = None,
    format: Annotated[str | None, typer.Option(help=f"Record format: {', '.join(FORMATS)}.")] = None,
    answer_type: NewAnswerType = None,
    mapping: Mapping = None,
) -> None:
    """Ingest benchmark problems from files. Re-ingesting a file adds nothing."""
    columns = ColumnMapping.parse(mapping) if mapping else None
    with progress_bar(f"ingesting {task}") as bar, database().transaction() as session:
        report = ingest_files(
            session,
            task,
            paths,
            format=format,
            answer_type=answer_type,
            split=split,
            purpose=purpose,
            ftcot_split=ftcot_split,
            mapping=columns,
            progress=lambda n: bar.advance(bar.task_ids[0], n),
        )
    _print_report(report)


def ingest_hf(
    task: Annotated[str, typer.Argument(help="Task name.")],
    dataset: Annotated[str | None, typer.Option(help="Hub dataset (default: the task's usual one).")] = None,
    config: Annotated[str | None, typer.Option(help="Dataset configuration.")] = None,
    hf_split: Annotated[str, typer.Option(help="Split to load from the hub.")] = "train",
    split: Annotated[str | None, typer.Option(help="Split name to store under (default: the hub's).")] = None,
    revision: Annotated[str | None, typer.Option(help="Dataset revision (commit) to pin.")] = None,
    purpose: Purpose = None,
    answer_type: NewAnswerType = None,
    mapping: Mapping = None,
) -> None:
    """Ingest a split of a Hugging Face hub dataset (needs network access to the hub)."""
    columns = ColumnMapping.parse(mapping) if mapping else None
    with progress_bar(f"ingesting {task} from the hub") as bar, database().transaction() as session:
        report = ingest_hub(
            session,
            task,
            dataset=dataset,
            config=config,
            hf_split=hf_split,
            split=split,
            revision=revision,
            purpose=purpose,
            answer_type=answer_type,
            mapping=columns,
            progress=lambda n: bar.advance(bar.task_ids[0], n),
        )
    _print_report(report)


def ingest_procedural_command(
    count: Annotated[int, typer.Option(help="How many problems.")] = 1000,
    seed: Annotated[int, typer.Option(help="Generator seed; problem i of a seed is always the same.")] = 0,
    offset: Annotated[int, typer.Option(help="Index of the first problem (to extend an earlier batch).")] = 0,
    split: Annotated[str, typer.Option(help="Split to store them in.")] = "train",
    purpose: Purpose = None,
    task: Annotated[str, typer.Option(help="Task to store them under.")] = "procedural",
) -> None:
    """Generate multi-step arithmetic word problems with exact answers and ingest them."""
    with progress_bar(f"generating {task}", total=count) as bar, database().transaction() as session:
        report = ingest_procedural(
            session,
            count=count,
            seed=seed,
            offset=offset,
            split=split,
            purpose=purpose,
            task=task,
            progress=lambda n: bar.advance(bar.task_ids[0], n),
        )
    _print_report(report)


def import_outputs(
    path: Annotated[Path, typer.Argument(help="Teacher outputs: JSONL, or a Kojima et al. zero-shot-CoT log.")],
    task: Annotated[str, typer.Option(help="Task whose problems the outputs answer.")],
    teacher: Annotated[str, typer.Option(help="The teacher's name (e.g. code-davinci-002).")],
    style: Annotated[TemplateStyle, typer.Option(help="How the teacher was prompted.")],
    split: Annotated[str | None, typer.Option(help="Only match problems of this split.")] = None,
    file_format: Annotated[
        str,
        typer.Option("--format", help="jsonl, kojima-log, or auto (a .log file that opens like Kojima's logs)."),
    ] = "auto",
    question_field: Annotated[str, typer.Option(help="Field with the question text.")] = "question",
    output_field: Annotated[str, typer.Option(help="Field with the output (text or list of texts).")] = "generated",
    ref_field: Annotated[
        str | None,
        typer.Option(help="Field with the problem's source_ref (instead of matching the question)."),
    ] = None,
    answer_field: Annotated[str | None, typer.Option(help="Field with a second-stage answer completion.")] = None,
    choices_field: Annotated[
        str | None, typer.Option(help="Field with the options as the teacher saw them (list, mapping or text).")
    ] = None,
    gold_field: Annotated[
        str | None, typer.Option(help="Field with the gold answer the file reports (checked against ours).")
    ] = None,
    template_name: Annotated[str | None, typer.Option(help="Name to store the prompt template under.")] = None,
    template_file: Annotated[Path | None, typer.Option(help="The prompt used, if the file lacks it.")] = None,
    name: Annotated[str | None, typer.Option(help="Run name.")] = None,
    skip_unmatched: Annotated[
        bool, typer.Option(help="Skip records whose problem is not stored (default: it is an error).")
    ] = False,
) -> None:
    """Import published teacher outputs as a synthesis run with its generations."""
    fields = OutputFields(question_field, output_field, ref_field, answer_field, choices_field, gold_field)
    template_text = template_file.read_text() if template_file else None
    with database().transaction() as session:
        report = import_teacher_outputs(
            session,
            path,
            task=task,
            teacher=teacher,
            style=style,
            split=split,
            fields=fields,
            template_name=template_name,
            template_text=template_text,
            run_name=name,
            skip_unmatched=skip_unmatched,
            file_format=file_format,
        )
    verb = "created" if report.created_run else "found existing"
    console.print(
        f"{verb} run [bold]#{report.run_id}[/]: {report.records:,} records, {report.problems:,} problems, "
        f"{report.generations:,} generations ({report.new_generations:,} new)"
    )
    if report.unmatched:
        console.print(
            f"  skipped {report.unmatched:,} records with no stored problem, e.g. {report.unmatched_examples[0]}"
        )
    if report.onto_copies:
        console.print(
            f"  {report.onto_copies:,} records matched copies of one question: spread over the copies in turn"
        )
    if report.choices_assumed:
        console.print(
            f"  warning: {report.choices_assumed:,} multiple-choice records do not show the options their teacher "
            "saw; their letters are scored against the stored order (give the choices in the question or "
            "--choices-field)"
        )
    if report.gold_disagreements:
        console.print(
            f"  warning: {report.gold_disagreements:,} records report a gold answer other than the stored one, "
            f"e.g. {report.gold_disagreement_examples[0]}"
        )
