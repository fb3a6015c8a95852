"""`curation refine`: one self-refinement round end to end, or several in a row.

Round k, for a program student (training run R, format pad or repair) evaluated on a training
split: collect its failures there with the interpreter's feedback (collect.py), build and store
the repairs and verify them (build.py), freeze snapshot `refine-run-R-round-k`: R's own snapshot
members and these repairs, nothing else (a `where` over R's snapshot and R's evaluations, so the
lineage is exact), and, with train steps, fine-tune R's student further on its `repair` export
(a new training run whose base model is R's output), then evaluate that run on the same training
split (what round k+1 collects from) and, if asked, on an evaluation split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from curation.db.session import Database
from curation.errors import CurationError, NotFoundError
from curation.models import Snapshot, TrainingRun, TrainingStatus
from trainer.config import TrainConfig
from trainer.refinement.build import build_repairs
from trainer.refinement.collect import check_training_split, collect_failures

PROGRAM_FORMATS = ("pad", "repair")


@dataclass(frozen=True)
class RefineSpec:
    training_run_id: int
    split: str = "train"
    task: str | None = None
    rounds: int = 1
    train_steps: int = 0
    evaluate_split: str | None = None  # an evaluation split to measure each new run on
    eval_limit: int | None = None
    max_new_tokens: int = 256
    batch_size: int | None = None
    learning_rate: float | None = None
    output_root: Path | None = None


@dataclass
class RoundReport:
    round: int
    training_run_id: int
    failures: int
    repairs: int
    created: int
    without_verified: int
    snapshot: str | None
    trained_run_id: int | None = None
    evaluations: dict[str, float] = field(default_factory=dict)  # split -> accuracy of the new run

    def line(self) -> str:
        text = (
            f"round {self.round} (run {self.training_run_id}): {self.failures} failures, {self.repairs} repairs "
            f"({self.created} new), {self.without_verified} problems without a verified program; "
            f"snapshot {self.snapshot or '-'}"
        )
        if self.trained_run_id is not None:
            text += f"; trained run {self.trained_run_id}"
        for split, accuracy in self.evaluations.items():
            text += f"; {split} accuracy {accuracy:.1%}"
        return text


def _where(snapshot: Snapshot, training_run_id: int, split: str) -> str:
    return (
        "rationale_id IN (SELECT sm.rationale_id FROM snapshot_member sm JOIN snapshot s ON s.id = sm.snapshot_id "
        f"WHERE s.name = '{snapshot.name}' AND s.version = {snapshot.version}) "
        "OR (origin = 'refinement' AND parent_id IN (SELECT ra.id FROM rationale ra JOIN evaluation ev "
        f"ON ev.id = ra.evaluation_id WHERE ev.training_run_id = {training_run_id} AND ev.split = '{split}'))"
    )


def refine(
    db: Database,
    spec: RefineSpec,
    *,
    sandbox_factory: Callable[[], Any] | None = None,
    echo: Callable[[str], object] | None = None,
) -> list[RoundReport]:
    from curation.snapshots.create import create_snapshot
    from trainer.evaluation import EvalSpec, evaluate
    from trainer.runs import create_training_run, execute_training_run

    if spec.rounds < 1:
        raise CurationError("--rounds must be at least 1")
    if spec.rounds > 1 and spec.train_steps <= 0:
        raise CurationError("a second round needs the student of the first: give --train-steps")
    reports: list[RoundReport] = []
    run_id = spec.training_run_id
    for k in range(1, spec.rounds + 1):
        with db.transaction() as session:
            check_training_split(session, spec.split, spec.task)
            run = session.get(TrainingRun, run_id)
            if run is None:
                raise NotFoundError(f"training run {run_id} does not exist")
            fmt = str(run.config.get("format"))
            if fmt not in PROGRAM_FORMATS:
                raise CurationError(
                    f"training run {run_id} trained a {fmt} student: refinement repairs programs (pad or repair)"
                )
            failures = collect_failures(session, run_id, spec.split, spec.task)
            source = session.get(Snapshot, run.snapshot_id)
            assert source is not None
            task_names = sorted({f.task for f in failures})
            config = TrainConfig.from_dict(run.config)
            checkpoint = run.checkpoint_path
            session.expunge(source)
        built = build_repairs(db, failures, sandbox_factory=sandbox_factory)
        report = RoundReport(
            k, run_id, len(failures), len(built.repaired), built.created, len(built.without_verified), None
        )
        name = f"refine-run-{run_id}-round-{k}"
        snapshot_spec = {
            "kinds": ["program"],
            "dedupe": "none",  # a repair's program is a verified one's: the same text, another prompt
            "where": _where(source, run_id, spec.split),
        }
        with db.transaction() as session:
            # The where is this module's own SQL (ids, and a snapshot and split name that exist).
            snapshot, _ = create_snapshot(session, name, snapshot_spec, trusted_where=True)
            report.snapshot = f"{snapshot.name}@{snapshot.version}"
        if echo:
            echo(report.line())
        if spec.train_steps > 0:
            assert checkpoint is not None
            new_config = replace(
                config,
                format="repair",
                max_steps=spec.train_steps,
                batch_size=spec.batch_size or config.batch_size,
                learning_rate=spec.learning_rate or config.learning_rate,
                save_steps=min(config.save_steps, spec.train_steps),
            )
            with db.transaction() as session:
                new_run = create_training_run(
                    session, report.snapshot, checkpoint, new_config, output_root=spec.output_root
                )
                new_run.config = {**new_run.config, "refinement": {"round": k, "from_training_run": run_id}}
                new_id = new_run.id
            done = execute_training_run(db, new_id, progress=echo is not None)
            if done.status is not TrainingStatus.completed:
                raise CurationError(f"training run {new_id} did not complete")
            report.trained_run_id = new_id
            splits = [spec.split] + ([spec.evaluate_split] if spec.evaluate_split else [])
            for task in task_names or ([spec.task] if spec.task else []):
                for split in splits:
                    result = evaluate(
                        db,
                        EvalSpec(
                            model=f"run:{new_id}", task=task, split=split, limit=spec.eval_limit,
                            max_new_tokens=spec.max_new_tokens,
                        ),
                        sandbox_factory=sandbox_factory,
                    )  # fmt: skip
                    report.evaluations[f"{task}/{split}"] = result.accuracy
            if echo:
                echo(report.line())
            run_id = new_id
        reports.append(report)
    return reports
