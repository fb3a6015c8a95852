"""`curation report --ablation`: one student on one split, decoded every way, side by side.

Rows: greedy; best-of-N with each selection and step-beam with each scorer set, at each N (the
samples, or the beams: expand = min(M, N)); and, for a training run, the student before and
after each refinement round that grew from it (`curation refine`: the run whose failures were
repaired, and the run trained on the repairs), both evaluated greedily on this split. Every row
is an `evaluation` (the missing ones are run, the stored ones reused: `trainer/evaluation.py`
finds an evaluation again by its decoding). Columns: accuracy, runnable-program rate (programs
that ran to a value / problems), teacher tokens (the teacher generations behind a round's
repairs; 0 where every repair was an existing verified program, and for decoding, which calls no
teacher), student tokens (generated while decoding), sandbox programs (decoding and
verification) and wall seconds (of the call that made the evaluation), as stored in
`evaluation.metrics` (evaluations made before it was kept show none).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from curation.db.session import Database
from curation.db.views import REFINEMENT_ROUND_RUNS
from curation.errors import CurationError
from curation.models import Evaluation, Generation, Rationale, RationaleOrigin, SnapshotMember, TrainingRun
from trainer.decoding.modes import Decoding
from trainer.evaluation import EvalSpec, evaluate


@dataclass(frozen=True)
class AblationSpec:
    model: str
    task: str
    split: str = "test"
    ns: tuple[int, ...] = (1, 2, 4, 8)
    selections: tuple[str, ...] = ("majority", "exec-vote")
    scorer_sets: tuple[tuple[str, ...], ...] = (("exec",), ("logprob",))
    expand: int = 2
    limit: int | None = None
    prompt_format: str | None = None
    max_new_tokens: int = 256
    max_steps: int = 24
    temperature: float = 0.8
    seed: int = 0
    verifier: str | None = None
    batch_size: int = 16
    device: str = "auto"
    refinement: bool = True


@dataclass(frozen=True)
class AblationRow:
    method: str  # greedy | best-of-N | step-beam | refine round k (before / after)
    n: int | None
    variant: str  # selection, scorers, or the training run
    evaluation_id: int
    problems: int
    accuracy: float
    runnable: float | None
    teacher_tokens: int | None
    student_tokens: int | None
    sandbox_programs: int | None
    wall_seconds: float | None


COLUMNS = (
    "method", "n", "variant", "evaluation_id", "problems", "accuracy", "runnable", "teacher_tokens",
    "student_tokens", "sandbox_programs", "wall_seconds",
)  # fmt: skip


def decodings(spec: AblationSpec) -> list[tuple[str, int | None, str, Decoding]]:
    """(method, N, variant, decoding) of every decoding row, greedy first."""
    plans: list[tuple[str, int | None, str, Decoding]] = [("greedy", 1, "-", Decoding())]
    common = Decoding(temperature=spec.temperature, seed=spec.seed, verifier=spec.verifier)
    for n in spec.ns:
        for how in spec.selections:
            plans.append(("best-of-N", n, how, replace(common, method="sample", samples=n, select=how)))
        for scorers in spec.scorer_sets:
            decoding = replace(
                common, method="step-beam", beams=n, expand=min(spec.expand, n), scorers=scorers,
                max_steps=spec.max_steps,
            )  # fmt: skip
            plans.append(("step-beam", n, "+".join(scorers), decoding))
    return plans


_ROUNDS = text(
    f"""
WITH {REFINEMENT_ROUND_RUNS.strip()}
SELECT round, before_run_id, after_run_id FROM made
ORDER BY round, before_run_id, after_run_id"""
)


def refinement_rounds(db: Database, run_id: int) -> list[tuple[int, int, int]]:
    """(round, run before, run after) of the rounds that grew from this run, in order: round 1
    repaired the run's failures, round 2 those of the run trained in round 1, ... (the view
    refinement_round_accuracy's rounds: curation/db/views.py REFINEMENT_ROUND_RUNS)."""
    with db.read() as session:
        edges = [(int(r), int(b), int(a)) for r, b, a in session.execute(_ROUNDS)]
    chain: list[tuple[int, int, int]] = []
    frontier = {run_id}
    while True:
        step = [e for e in edges if e[1] in frontier and e not in chain]
        if not step:
            return chain
        chain.extend(step)
        frontier = {a for _, _, a in step}


def _teacher_tokens(db: Database, after_run_id: int) -> int:
    """Tokens of the teacher generations behind the repairs the run was trained on."""
    with db.read() as session:
        snapshot_id = session.execute(
            select(TrainingRun.snapshot_id).where(TrainingRun.id == after_run_id)
        ).scalar_one()
        total = session.execute(
            select(func.coalesce(func.sum(Generation.prompt_tokens + Generation.completion_tokens), 0))
            .join(Rationale, Rationale.generation_id == Generation.id)
            .join(SnapshotMember, SnapshotMember.rationale_id == Rationale.id)
            .where(SnapshotMember.snapshot_id == snapshot_id, Rationale.origin == RationaleOrigin.refinement)
        ).scalar_one()
    return int(total or 0)


def _row(
    db: Database, method: str, n: int | None, variant: str, evaluation_id: int, teacher: int | None
) -> AblationRow:
    with db.read() as session:
        e = session.get(Evaluation, evaluation_id)
        assert e is not None
        metrics: dict[str, Any] = e.metrics or {}
        runnable = e.executed_ok / e.problems if e.executed_ok is not None and e.problems else None
        return AblationRow(
            method, n, variant, e.id, e.problems, e.accuracy or 0.0, runnable, teacher,
            metrics.get("student_tokens"), metrics.get("sandbox_programs"), metrics.get("wall_seconds"),
        )  # fmt: skip


def run_ablation(
    db: Database,
    spec: AblationSpec,
    *,
    sandbox_factory: Callable[[], Any] | None = None,
    echo: Callable[[str], object] | None = None,
) -> list[AblationRow]:
    if not spec.ns or any(n < 1 for n in spec.ns):
        raise CurationError("--n takes positive sizes, e.g. 1,2,4,8")
    base = EvalSpec(
        model=spec.model, task=spec.task, split=spec.split, prompt_format=spec.prompt_format, limit=spec.limit,
        batch_size=spec.batch_size, max_new_tokens=spec.max_new_tokens, device=spec.device,
    )  # fmt: skip
    rows: list[AblationRow] = []
    for method, n, variant, decoding in decodings(spec):
        if echo:
            echo(f"{method} N={n} {variant}")
        report = evaluate(db, replace(base, decoding=decoding), sandbox_factory=sandbox_factory, echo=echo)
        rows.append(_row(db, method, n, variant, report.evaluation_id, 0))
    if spec.refinement and spec.model.startswith("run:"):
        for k, before, after in refinement_rounds(db, int(spec.model[4:])):
            for side, run_id in (("before", before), ("after", after)):
                report = evaluate(db, replace(base, model=f"run:{run_id}"), sandbox_factory=sandbox_factory, echo=echo)
                teacher = _teacher_tokens(db, after) if side == "after" else None
                rows.append(_row(db, f"refine round {k} ({side})", 1, f"run:{run_id}", report.evaluation_id, teacher))
    return rows


def write_ablation(rows: Sequence[AblationRow], folder: Path, name: str) -> list[Path]:
    """`<name>.csv` (every column) and `<name>.png` (accuracy against N per method and variant)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    table = folder / f"{name}.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for r in rows:
            writer.writerow([getattr(r, c) if getattr(r, c) is not None else "" for c in COLUMNS])
    figure, axis = plt.subplots(figsize=(7, 4))
    series: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        if r.method in ("best-of-N", "step-beam") and r.n is not None:
            series.setdefault(f"{r.method} {r.variant}", []).append((r.n, r.accuracy))
    for label, points in series.items():
        points.sort()
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    for r in rows:
        if r.method == "greedy":
            axis.axhline(r.accuracy, color="black", linestyle="--", label="greedy")
    axis.set_xscale("log", base=2)
    axis.set_xlabel("N (samples or beams)")
    axis.set_ylabel("accuracy")
    axis.set_ylim(-0.02, 1.02)
    axis.legend(fontsize=7)
    figure.tight_layout()
    plot = folder / f"{name}.png"
    figure.savefig(plot)
    plt.close(figure)
    return [table, plot]
