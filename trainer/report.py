"""The report: training runs x tasks in a terminal table, and PNG plots of the loss curves and of
accuracy per run and task, written to a folder whose path is printed.

One row per evaluation: the model (a training run's output, or a model evaluated as it is, such
as the bundled SmolLM2 before training), the task and split, the decoding (a run can have greedy,
best-of-N and step-beam evaluations of one split), accuracy and counts, and for a trained model
its snapshot version and size, base model, tokens seen and training time. The accuracy plot shows
the greedy evaluations (`curation report --ablation` plots one student's decodings against N).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from curation.models import Evaluation, LanguageModel, Snapshot, Task, TrainingRun, TrainingStatus


@dataclass(frozen=True)
class ReportRow:
    evaluation_id: int
    model: str
    training_run_id: int | None
    snapshot: str | None
    snapshot_rows: int | None
    base_model: str | None
    tokens_seen: int | None
    train_seconds: float | None
    task: str
    split: str
    decoding: str  # decoding_label(evaluation.decoding)
    problems: int
    correct: int
    accuracy: float | None

    @property
    def who(self) -> str:
        return f"run {self.training_run_id}" if self.training_run_id is not None else self.model


@dataclass(frozen=True)
class Report:
    rows: list[ReportRow]
    curves: dict[int, tuple[list[tuple[int, float]], list[tuple[int, float]]]]  # run -> (train, validation)


def collect_report(session: Session) -> Report:
    runs = {run.id: run for run in session.execute(select(TrainingRun).order_by(TrainingRun.id)).scalars()}
    snapshots = {s.id: s for s in session.execute(select(Snapshot)).scalars()}
    models = {m.id: m for m in session.execute(select(LanguageModel)).scalars()}
    rows = []
    query = (
        select(Evaluation, Task.name)
        .join(Task, Task.id == Evaluation.task_id)
        .where(Evaluation.status == TrainingStatus.completed)
        .order_by(Evaluation.id)
    )
    for evaluation, task in session.execute(query):
        run = runs.get(evaluation.training_run_id) if evaluation.training_run_id is not None else None
        snapshot = snapshots.get(run.snapshot_id) if run is not None else None
        metrics = (run.metrics or {}) if run is not None else {}
        base = models.get(run.base_model_id) if run is not None else None
        rows.append(
            ReportRow(
                evaluation_id=evaluation.id,
                model=_short(models[evaluation.model_id].name),
                training_run_id=run.id if run is not None else None,
                snapshot=f"{snapshot.name}@{snapshot.version}" if snapshot is not None else None,
                snapshot_rows=snapshot.row_count if snapshot is not None else None,
                base_model=_short(base.name) if base is not None else None,
                tokens_seen=metrics.get("tokens_seen"),
                train_seconds=metrics.get("wall_seconds"),
                task=task,
                split=evaluation.split,
                decoding=decoding_label(evaluation.decoding),
                problems=evaluation.problems,
                correct=evaluation.correct,
                accuracy=evaluation.accuracy,
            )
        )
    curves = {
        run_id: (
            [(int(s), float(v)) for s, v in (run.metrics or {}).get("train_loss", [])],
            [(int(s), float(v)) for s, v in (run.metrics or {}).get("validation_loss", [])],
        )
        for run_id, run in runs.items()
        if run.status is TrainingStatus.completed
    }
    return Report(rows, curves)


def decoding_label(decoding: dict[str, Any] | None) -> str:
    """How an evaluation decoded, in a few words: `greedy`, `greedy +2 repair rounds`,
    `sample 4 exec-vote`, `step-beam 4x2 exec+logprob`. No decoding stored: an evaluation made
    before decodings were, all of them greedy."""
    if not decoding:
        return "greedy"
    method = str(decoding.get("method", "greedy"))
    if method == "greedy":
        label = "greedy"
    elif method == "sample":
        label = f"sample {decoding.get('samples')} {decoding.get('select')}"
    elif method == "step-beam":
        label = f"step-beam {decoding.get('beams')}x{decoding.get('expand')} {'+'.join(decoding.get('scorers', []))}"
    else:
        label = method
    if decoding.get("repair_rounds"):
        label += f" +{decoding['repair_rounds']} repair rounds"
    return label


def plotted_rows(report: Report) -> list[ReportRow]:
    """The rows of the accuracy plot: greedy evaluations only, one bar each (sample and step-beam
    evaluations of the same run and split would stand beside it unlabelled)."""
    return [r for r in report.rows if r.decoding == "greedy"]


def _short(name: str) -> str:
    return name if len(name) <= 48 else "..." + name[-45:]


def write_plots(report: Report, folder: Path) -> list[Path]:
    """loss_curves.png (every completed run's training and validation loss) and accuracy.png
    (greedy accuracy per model and task split); the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if report.curves:
        figure, axis = plt.subplots(figsize=(7, 4.5))
        for run_id, (train, validation) in report.curves.items():
            if train:
                line = axis.plot(*zip(*train, strict=True), label=f"run {run_id} train")[0]
                if validation:
                    axis.plot(*zip(*validation, strict=True), "o--", color=line.get_color(), label=f"run {run_id} val")
        axis.set_xlabel("optimizer step")
        axis.set_ylabel("loss (completion tokens)")
        axis.set_title("Training and validation loss")
        axis.legend(fontsize=8)
        figure.tight_layout()
        path = folder / "loss_curves.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)
    rows = plotted_rows(report)
    if rows:
        figure, axis = plt.subplots(figsize=(max(6.0, 1.2 * len(rows)), 4.5))
        labels = [f"{r.who}\n{r.task}/{r.split}" for r in rows]
        values = [100 * (r.accuracy or 0.0) for r in rows]
        colours = ["#888" if r.training_run_id is None else "#3a7" for r in rows]
        bars = axis.bar(range(len(values)), values, color=colours)
        axis.bar_label(bars, labels=[f"{v:.1f}%" for v in values], fontsize=8)
        axis.set_xticks(range(len(labels)), labels, fontsize=7)
        axis.set_ylabel("accuracy (%)")
        axis.set_title("Greedy accuracy per model and task (grey: not trained here)")
        figure.tight_layout()
        path = folder / "accuracy.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)
    return written
