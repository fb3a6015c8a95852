"""`curation eval` and `curation report` (trainer/evaluation.py and trainer/report.py do the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from curation.cli.context import console, database, err_console


def evaluate(
    model: Annotated[
        str, typer.Option("--model", help="run:ID, a model folder, embedded, or openai:MODEL (with --base-url).")
    ],
    task: Annotated[str, typer.Option("--task", help="Task to evaluate on.")],
    split: Annotated[str, typer.Option("--split", help="Split to evaluate on (an evaluation split).")] = "test",
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server, for openai:MODEL.")] = None,
    format: Annotated[
        str | None, typer.Option("--format", help="Prompt format (default: the training run's, else ftcot).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="The first N problems of the split only.")] = None,
    batch_size: Annotated[int, typer.Option(help="Prompts per generation batch.")] = 16,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per output.")] = 256,
    repair_rounds: Annotated[
        int, typer.Option(help="Program students: repair outputs whose execution failed, up to N rounds.")
    ] = 0,
    decode: Annotated[str, typer.Option(help="greedy, sample (best-of-N) or step-beam.")] = "greedy",
    samples: Annotated[int, typer.Option(help="--decode sample: samples per problem (N).")] = 4,
    temperature: Annotated[float, typer.Option(help="--decode sample / step-beam: sampling temperature.")] = 0.8,
    select: Annotated[str, typer.Option(help="--decode sample: majority, exec-vote or verifier.")] = "majority",
    beams: Annotated[int, typer.Option(help="--decode step-beam: live beams per problem (N).")] = 4,
    expand: Annotated[int, typer.Option(help="--decode step-beam: children per surviving beam (M).")] = 2,
    scorer: Annotated[
        str, typer.Option(help="--decode step-beam: step scorers, comma-separated: exec, logprob, verifier.")
    ] = "exec",
    max_steps: Annotated[int, typer.Option(help="--decode step-beam: lines before the search stops.")] = 24,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    verifier: Annotated[
        Path | None, typer.Option(help="A trained verifier folder (curation verifier train --out), for verifier.")
    ] = None,
) -> None:
    """Outputs on a task split (greedy, best-of-N or step-beam), stored as generations and student
    rationales, verified, and scored."""
    from trainer.decoding.modes import Decoding
    from trainer.evaluation import EvalSpec
    from trainer.evaluation import evaluate as run_evaluation

    if decode == "sample" and samples > 1 and temperature == 0:
        # At temperature 0 the sampler takes the likeliest token every time (greedy).
        err_console.print(
            f"[bold yellow]warning:[/] --samples {samples} at --temperature 0: greedy decoding gives every sample "
            "the same text, so best-of-N selects among copies and costs N times a greedy evaluation (give a "
            "temperature, e.g. --temperature 0.8)",
            highlight=False,
        )
    decoding = Decoding(
        method=decode, samples=samples, temperature=temperature, select=select, beams=beams, expand=expand,
        scorers=tuple(s.strip() for s in scorer.split(",") if s.strip()), max_steps=max_steps, seed=seed,
        verifier=str(verifier) if verifier else None,
    )  # fmt: skip
    spec = EvalSpec(
        model=model, task=task, split=split, base_url=base_url, prompt_format=format, limit=limit,
        batch_size=batch_size, max_new_tokens=max_new_tokens, repair_rounds=repair_rounds, decoding=decoding,
    )  # fmt: skip
    console.print(run_evaluation(database(), spec, echo=console.print).line())


def report(
    out: Annotated[Path | None, typer.Option(help="Folder for the PNG plots (default: <data dir>/report).")] = None,
    ablation: Annotated[
        bool, typer.Option("--ablation", help="One student on one split, every decoding (needs --model, --task).")
    ] = False,
    model: Annotated[str | None, typer.Option(help="--ablation: run:ID, a model folder or embedded.")] = None,
    task: Annotated[str | None, typer.Option(help="--ablation: the task.")] = None,
    split: Annotated[str, typer.Option(help="--ablation: the split.")] = "test",
    n: Annotated[str, typer.Option("--n", help="--ablation: sizes N (samples, beams), comma-separated.")] = "1,2,4,8",
    selections: Annotated[
        str | None,
        typer.Option(
            help="--ablation: best-of-N selections (majority, exec-vote, verifier); default: each of them "
            "(verifier when --verifier is given)."
        ),
    ] = None,
    scorers: Annotated[
        str | None,
        typer.Option(
            help="--ablation: step-beam scorer sets, comma-separated; + combines (exec+logprob); default: each "
            "scorer alone (verifier when --verifier is given)."
        ),
    ] = None,
    verifier: Annotated[Path | None, typer.Option(help="--ablation: a trained verifier folder.")] = None,
    limit: Annotated[int | None, typer.Option(help="--ablation: the first N problems of the split only.")] = None,
    format: Annotated[str | None, typer.Option("--format", help="--ablation: prompt format.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="--ablation: tokens per output.")] = 256,
    max_steps: Annotated[int, typer.Option(help="--ablation: step-beam lines before the search stops.")] = 24,
    expand: Annotated[int, typer.Option(help="--ablation: step-beam children per survivor (at most N).")] = 2,
    refinement: Annotated[
        bool, typer.Option(help="--ablation: the student before and after each refinement round.")
    ] = True,
) -> None:
    """Training runs x tasks: accuracy, snapshot version and size, base model, tokens, time; PNG
    plots. With --ablation: one student's decodings side by side (running the missing ones)."""
    from curation.settings import get_settings

    folder = out or get_settings().data_dir / "report"
    if ablation:
        if not model or not task:
            raise typer.BadParameter("--ablation needs --model and --task")
        _ablation(model, task, split, n, selections, scorers, verifier, limit, format, max_new_tokens, max_steps,
                  expand, refinement, folder)  # fmt: skip
        return
    from trainer.report import collect_report, write_plots

    with database().read() as session:
        result = collect_report(session)
    table = Table(title="Training runs x tasks")
    columns = ("model", "task/split", "decoding", "accuracy", "correct", "snapshot (rows)", "base model", "tokens",
               "time")  # fmt: skip
    for column in columns:
        table.add_column(column)
    for row in result.rows:
        table.add_row(
            row.who if row.training_run_id is not None else f"{row.model} (as is)",
            f"{row.task}/{row.split}",
            row.decoding,
            f"{100 * (row.accuracy or 0):.1f}%",
            f"{row.correct}/{row.problems}",
            f"{row.snapshot} ({row.snapshot_rows})" if row.snapshot else "-",
            row.base_model or "-",
            f"{row.tokens_seen:,}" if row.tokens_seen is not None else "-",
            f"{row.train_seconds:.0f} s" if row.train_seconds is not None else "-",
        )
    console.print(table)
    written = write_plots(result, folder)
    console.print(f"plots: {folder.resolve()} ({', '.join(p.name for p in written) or 'nothing to plot yet'})")


def _ablation(
    model: str, task: str, split: str, n: str, selections: str | None, scorers: str | None, verifier: Path | None,
    limit: int | None, fmt: str | None, max_new_tokens: int, max_steps: int, expand: int, refinement: bool,
    folder: Path,
) -> None:  # fmt: skip
    import re

    from trainer.ablation import AblationSpec, run_ablation, write_ablation

    # Each selection and each scorer, as issue 13's ablation asks: the verifier's only where one is given.
    selections = selections or ("majority,exec-vote,verifier" if verifier else "majority,exec-vote")
    scorers = scorers or ("exec,logprob,verifier" if verifier else "exec,logprob")
    try:
        ns = tuple(int(x) for x in n.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"--n {n!r}: comma-separated sizes, e.g. 1,2,4,8") from None
    spec = AblationSpec(
        model=model, task=task, split=split, ns=ns,
        selections=tuple(s.strip() for s in selections.split(",") if s.strip()),
        scorer_sets=tuple(tuple(p for p in s.strip().split("+") if p) for s in scorers.split(",") if s.strip()),
        expand=expand, limit=limit, prompt_format=fmt, max_new_tokens=max_new_tokens, max_steps=max_steps,
        verifier=str(verifier) if verifier else None, refinement=refinement,
    )  # fmt: skip
    rows = run_ablation(database(), spec, echo=console.print)
    table = Table(title=f"Ablation: {model} on {task}/{split}" + (f" (first {limit})" if limit else ""))
    for column in ("method", "N", "variant", "eval", "accuracy", "runnable", "teacher tok", "student tok",
                   "sandbox", "wall"):  # fmt: skip
        table.add_column(column)

    def shown(value: float | int | None, pattern: str) -> str:
        return pattern.format(value) if value is not None else "-"

    for r in rows:
        table.add_row(
            r.method, shown(r.n, "{}"), r.variant, f"#{r.evaluation_id}", f"{100 * r.accuracy:.1f}%",
            shown(None if r.runnable is None else 100 * r.runnable, "{:.0f}%"), shown(r.teacher_tokens, "{:,}"),
            shown(r.student_tokens, "{:,}"), shown(r.sandbox_programs, "{:,}"), shown(r.wall_seconds, "{:.1f} s"),
        )  # fmt: skip
    console.print(table)
    name = "ablation-" + re.sub(r"[^A-Za-z0-9]+", "-", f"{model.rsplit('/', 1)[-1]}-{task}-{split}").strip("-")
    written = write_ablation(rows, folder, name)
    console.print(f"ablation: {', '.join(str(p.resolve()) for p in written)}")
