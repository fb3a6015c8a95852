"""Training runs: a `training_run` row per fine-tuning of a base model on one snapshot version.

`create_training_run` stores the run (pending) with its full config; `execute_training_run` does
it: exports the snapshot into the run's folder (the trainer reads nothing else), carves the
validation split by problem, fits, registers the output model as a `model` row, and records the
loss curves, tokens seen, tokens/s, wall time, checkpoints and the selected checkpoint. It is
idempotent: a completed run is left alone, and a run that crashed resumes from its last
checkpoint (the export is reused when its manifest is complete).

The run's folder is `<data dir>/training/run-<id>-<snapshot hash[:12]>/`: the name alone ties a
model on disk to its run and its snapshot version, and `lineage.json` inside says the rest (the
snapshot, its hash, the export's file hashes, the base model and its weights hash, the config).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from curation.db.base import utc_now
from curation.db.session import Database
from curation.errors import CurationError, NotFoundError
from curation.models import ModelRole, Problem, Snapshot, Split, SplitPurpose, TrainingRun, TrainingStatus
from curation.repositories import models as model_repo
from curation.settings import get_settings
from trainer.config import TrainConfig
from trainer.distributed import from_main, is_main_process, wait_for_everyone
from trainer.evaluation import weights_digest
from trainer.fit import FitResult
from trainer.lease import RunHeld, TrainingLease, lease_guard
from trainer.packing import Example
from trainer.validation import carve_validation

TEXT_FORMATS = ("ftcot", "pad", "repair", "trl-prompt-completion")
EXPORT = "data"


@dataclass(frozen=True)
class BaseModel:
    """A base model as given on the command line, resolved: the folder it loads from, and the
    model row's backend, name and revision (the weights' sha256 for a local folder)."""

    path: str
    backend: str
    name: str
    revision: str


def resolve_base_model(text: str) -> BaseModel:
    """`embedded` (the bundled SmolLM2), a local folder, or a hub id (loaded offline from the local
    cache; its revision is the cached commit when known)."""
    if text == "embedded":
        from workers.teachers.embedded_model import MODEL_NAME, prepare_embedded_model

        folder = prepare_embedded_model()
        return BaseModel(str(folder), "embedded", MODEL_NAME, weights_digest(folder))
    folder = Path(text).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise CurationError(f"--base-model {text!r}: the folder has no config.json")
        folder = folder.resolve()
        return BaseModel(str(folder), "transformers", str(folder), weights_digest(folder))
    try:
        from huggingface_hub import snapshot_download

        cached = Path(snapshot_download(text, local_files_only=True))
    except Exception as error:
        raise CurationError(
            f"--base-model {text!r} is no folder, and no hub model of that id is in the local cache ({error})"
        ) from None
    return BaseModel(str(cached), "hub", text, cached.name)


def run_dir(run: TrainingRun, snapshot: Snapshot) -> Path:
    root = Path(run.config.get("output_root") or get_settings().data_dir / "training")
    return root / f"run-{run.id}-{snapshot.content_sha256[:12]}"


def _resolve_snapshot(session: Session, ref: str) -> Snapshot:
    from curation.snapshots.create import resolve_snapshot

    snapshot: Snapshot = resolve_snapshot(session, ref)
    return snapshot


def create_training_run(
    session: Session, snapshot_ref: str, base_model: str, config: TrainConfig, *, output_root: Path | None = None
) -> TrainingRun:
    if config.format not in TEXT_FORMATS:
        raise CurationError(f"--format {config.format!r}: the trainer reads {', '.join(TEXT_FORMATS)} exports")
    snapshot = _resolve_snapshot(session, snapshot_ref)
    base = resolve_base_model(base_model)
    row = model_repo.ensure_model(
        session, role=ModelRole.student, backend=base.backend, name=base.name, revision=base.revision
    )
    run = TrainingRun(
        snapshot_id=snapshot.id,
        base_model_id=row.id,
        config={
            **config.as_dict(),
            "snapshot": f"{snapshot.name}@{snapshot.version}",
            "snapshot_hash": snapshot.content_sha256,
            "base_model": asdict(base),
            "output_root": str(output_root) if output_root else None,
        },
        status=TrainingStatus.pending,
    )
    session.add(run)
    session.flush()
    return run


def read_export(session: Session, export_dir: Path) -> list[Example]:
    """The training examples of an export: its files for training splits only. A row whose problem
    sits in an evaluation split is an error naming it (a training snapshot never holds one; this
    is the trainer's own check that it never reads one)."""
    manifest = json.loads((export_dir / "manifest.json").read_text())
    if manifest.get("format") not in TEXT_FORMATS:
        raise CurationError(f"{export_dir}: the trainer reads {', '.join(TEXT_FORMATS)} exports")
    examples: list[Example] = []
    for entry in manifest["files"]:
        path = export_dir / entry["path"]
        # Records end at b"\n" only: str.splitlines() also splits at U+2028, U+0085 and form feeds,
        # which JSON leaves unescaped inside strings (GSM8K's text has them).
        for line_number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
                examples.append(Example(row["prompt"], row["completion"], int(row["problem_id"])))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                raise CurationError(f"{path}:{line_number}: not an export record ({error})") from None
            if not examples[-1].prompt or not examples[-1].completion:
                raise CurationError(f"{path}:{line_number}: an empty prompt or completion")
    problem_ids = sorted({e.problem_id for e in examples if e.problem_id is not None})
    held_out: list[Any] = []
    for start in range(0, len(problem_ids), 5_000):
        held_out.extend(
            session.execute(
                select(Problem.id, Problem.split)
                .join(Split, (Split.task_id == Problem.task_id) & (Split.name == Problem.split))
                .where(Problem.id.in_(problem_ids[start : start + 5_000]), Split.purpose != SplitPurpose.train)
            ).all()
        )
    if held_out:
        pid, split = held_out[0]
        raise CurationError(
            f"{export_dir}: problem {pid} is in evaluation split {split!r}; the trainer never reads one "
            f"({len(held_out)} such problems)"
        )
    if not examples:
        raise CurationError(f"{export_dir}: the export holds no training examples")
    return examples


def _export(db: Database, run: TrainingRun, snapshot: Snapshot, target: Path) -> dict[str, Any]:
    if (target / "manifest.json").is_file():
        manifest: dict[str, Any] = json.loads((target / "manifest.json").read_text())
        return manifest
    from curation.snapshots.export import export_snapshot

    with db.read() as session:
        written = export_snapshot(session, f"{snapshot.name}@{snapshot.version}", str(run.config["format"]), target)
    return dict(written.as_dict())


def _start(db: Database, run_id: int, lease: TrainingLease) -> str | BaseException:
    """The main process's decision: "train" (the run is claimed and marked running), "done" (it
    is completed already), or the error (RunHeld: another process trains it)."""
    try:
        with db.transaction() as session:
            run = session.get(TrainingRun, run_id)
            if run is None:
                raise NotFoundError(f"training run {run_id} does not exist")
            if run.status is TrainingStatus.completed or not lease.acquire(session):
                return "done"
            run.status = TrainingStatus.running
            run.started_at = run.started_at or utc_now()
            run.error = None
        return "train"
    except Exception as error:
        return error


def _load(db: Database, run_id: int) -> tuple[TrainingRun, Snapshot]:
    with db.read() as session:
        run = session.get(TrainingRun, run_id)
        if run is None:
            raise NotFoundError(f"training run {run_id} does not exist")
        snapshot = session.get(Snapshot, run.snapshot_id)
        assert snapshot is not None
        session.expunge(run)
        session.expunge(snapshot)
    return run, snapshot


def execute_training_run(
    db: Database, run_id: int, *, progress: bool = True, lease_seconds: float | None = None
) -> TrainingRun:
    """Train the run (or resume it from its last checkpoint), store its curves and its model.

    A completed run is left alone; one another live process trains raises RunHeld (trainer/lease.py)
    and is not touched. Under torchrun / accelerate launch every process calls this: the main one
    claims the run, exports the snapshot and writes the rows; the others train their shard."""
    from trainer.fit import fit

    lease = TrainingLease(db, run_id, lease_seconds or get_settings().lease_seconds)
    main = is_main_process()
    decision = _start(db, run_id, lease) if main else "train"
    shared = from_main(decision if isinstance(decision, str) else f"{type(decision).__name__}: {decision}")
    if isinstance(decision, BaseException):
        raise decision
    if shared == "done":
        return _load(db, run_id)[0]
    if shared != "train":
        raise CurationError(f"training run {run_id}: the main process did not train it ({shared})")
    try:
        run, snapshot = _load(db, run_id)
        folder = run_dir(run, snapshot)
        config = TrainConfig.from_dict(run.config)
        base = BaseModel(**run.config["base_model"])
        with lease.kept() if main else contextlib.nullcontext():
            if main:
                folder.mkdir(parents=True, exist_ok=True)
                _export(db, run, snapshot, folder / EXPORT)
            wait_for_everyone()  # the others read the export the main process wrote
            manifest = json.loads((folder / EXPORT / "manifest.json").read_text())
            with db.read() as session:
                examples = read_export(session, folder / EXPORT)
            train, validation = carve_validation(examples, config.validation_fraction, config.max_validation_problems)
            lineage = {
                "training_run": run_id,
                "snapshot": manifest.get("snapshot"),
                "snapshot_hash": manifest.get("snapshot_hash"),
                "export": manifest.get("files"),
                "base_model": run.config["base_model"],
                "config": config.as_dict(),
                "examples": {"train": len(train), "validation": len(validation)},
                "validation_problems": sorted({e.problem_id for e in validation if e.problem_id is not None}),
            }
            if main:
                (folder / "lineage.json").write_text(json.dumps(lineage, indent=2))
            guard = [lease_guard(lease)] if main else []
            result = fit(config, base.path, train, validation, folder, progress=progress, callbacks=guard)
            if main:  # still renewed: hashing a large model may take longer than a lease
                _complete(db, run_id, lease, result, lineage, config, folder)
    except RunHeld:
        raise  # the lease was lost: the run is another process's now, its row is left alone
    except BaseException as error:
        if main:
            with db.transaction() as session:
                if lease.release(session):
                    failed = session.get(TrainingRun, run_id)
                    assert failed is not None
                    failed.status = TrainingStatus.failed
                    failed.error = f"{type(error).__name__}: {error}"[:4000]
        raise
    wait_for_everyone()  # the others return the row the main process wrote
    return _load(db, run_id)[0]


def _complete(
    db: Database,
    run_id: int,
    lease: TrainingLease,
    result: FitResult,
    lineage: dict[str, Any],
    config: TrainConfig,
    folder: Path,
) -> None:
    revision = weights_digest(result.model_dir)  # before the transaction: it reads every weight file
    with db.transaction() as session:
        if not lease.release(session):
            raise lease.lost_error()
        output = model_repo.ensure_model(
            session,
            role=ModelRole.student,
            backend="transformers",
            name=str(result.model_dir.resolve()),
            revision=revision,
            parameters={"training_run": run_id, "snapshot": lineage["snapshot"], "format": config.format},
        )
        done = session.get(TrainingRun, run_id)
        assert done is not None
        done.output_model_id = output.id
        done.checkpoint_path = str(result.model_dir.resolve())
        done.status = TrainingStatus.completed
        done.finished_at = utc_now()
        done.metrics = {
            "train_loss": result.train_loss,
            "validation_loss": result.validation_loss,
            "steps": result.steps,
            "tokens_seen": result.tokens_seen,
            "tokens_per_second": result.tokens_per_second,
            "wall_seconds": result.wall_seconds,
            "validation_seconds": result.validation_seconds,
            "checkpoints": result.checkpoints,
            "selected_checkpoint": result.selected_checkpoint,
            "resumed_from": result.resumed_from,
            "examples": lineage["examples"],
            "precision": result.precision,
            "devices": result.devices,
            "run_dir": str(folder.resolve()),
        }
