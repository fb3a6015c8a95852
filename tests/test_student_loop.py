"""From a snapshot version to a measured student: `curation train` on a snapshot export of the
procedural problems' reference rationales (a tiny random Llama with the SmolLM2 tokenizer), then
`curation eval` of the run on the held-out test split, every step a row."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from curation.db.session import Database
from curation.errors import CurationError
from curation.ingestion.service import ingest_procedural
from curation.models import (
    Evaluation,
    Label,
    LanguageModel,
    Problem,
    Rationale,
    RationaleOrigin,
    Snapshot,
    TrainingRun,
    TrainingStatus,
    Verdict,
)
from tests.support.training_data import reference_snapshot
from trainer.config import TrainConfig
from trainer.evaluation import EvalSpec, evaluate
from trainer.report import collect_report, write_plots
from trainer.runs import create_training_run, execute_training_run, read_export


@pytest.mark.slow
def test_train_on_a_snapshot_then_evaluate_the_run(sqlite_db: Database, tiny_student: Path, tmp_path: Path) -> None:
    db = sqlite_db
    ref = reference_snapshot(db)
    config = TrainConfig(
        format="ftcot", max_steps=6, batch_size=4, learning_rate=1e-3, save_steps=3, validation_fraction=0.2
    )
    with db.transaction() as session:
        run_id = create_training_run(session, ref, str(tiny_student), config, output_root=tmp_path / "runs").id
    run = execute_training_run(db, run_id, progress=False)
    assert run.status is TrainingStatus.completed
    with db.read() as session:
        stored = session.get(TrainingRun, run_id)
        assert stored is not None and stored.metrics is not None
        snapshot = session.get(Snapshot, stored.snapshot_id)
        assert snapshot is not None and f"{snapshot.name}@{snapshot.version}" == ref
        output = session.get(LanguageModel, stored.output_model_id)
        assert output is not None and output.name == stored.checkpoint_path and len(output.revision) == 64
        base = session.get(LanguageModel, stored.base_model_id)
        assert base is not None and base.name == str(tiny_student.resolve()) and len(base.revision) == 64
        test_ids = set(session.execute(select(Problem.id).where(Problem.split == "test")).scalars())
    metrics = stored.metrics
    assert [step for step, _ in metrics["train_loss"]] == list(range(1, 7))
    assert [step for step, _ in metrics["validation_loss"]] == [3, 6]
    assert metrics["selected_checkpoint"] and metrics["selected_checkpoint"] in metrics["checkpoints"]
    assert metrics["tokens_seen"] > 0 and metrics["tokens_per_second"] > 0 and metrics["wall_seconds"] > 0
    assert 0 < metrics["validation_seconds"] < metrics["wall_seconds"]  # tokens/s leaves validation out
    folder = Path(metrics["run_dir"])
    assert folder.name == f"run-{run_id}-{snapshot.content_sha256[:12]}"
    lineage = json.loads((folder / "lineage.json").read_text())
    assert lineage["snapshot"] == ref and lineage["snapshot_hash"] == snapshot.content_sha256
    assert lineage["examples"]["train"] + lineage["examples"]["validation"] == snapshot.row_count == 20
    assert lineage["examples"]["validation"] > 0 and not set(lineage["validation_problems"]) & test_ids
    manifest = json.loads((folder / "data" / "manifest.json").read_text())
    assert [f["split"] for f in manifest["files"]] == ["train"]  # nothing of a test split was exported
    assert execute_training_run(db, run_id, progress=False).metrics == metrics  # done: left alone

    report = evaluate(db, EvalSpec(model=f"run:{run_id}", task="procedural", split="test", max_new_tokens=24))
    assert report.problems == 6 and report.generated == 6
    with db.read() as session:
        evaluation = session.get(Evaluation, report.evaluation_id)
        assert evaluation is not None and evaluation.training_run_id == run_id
        assert evaluation.model_id == stored.output_model_id and evaluation.status is TrainingStatus.completed
        outputs = session.execute(select(Rationale).where(Rationale.evaluation_id == evaluation.id)).scalars().all()
        assert len(outputs) == 6 and {r.problem_id for r in outputs} == test_ids
        assert all(r.origin is RationaleOrigin.student and r.model_id == evaluation.model_id for r in outputs)
        correct = session.execute(
            select(func.count())
            .select_from(Label)
            .join(Rationale, Rationale.id == Label.rationale_id)
            .where(Rationale.evaluation_id == evaluation.id, Label.verdict == Verdict.correct)
        ).scalar_one()
        labelled = session.execute(
            select(func.count())
            .select_from(Label)
            .join(Rationale, Rationale.id == Label.rationale_id)
            .where(Rationale.evaluation_id == evaluation.id)
        ).scalar_one()
    assert labelled == 6
    assert evaluation.correct == correct and evaluation.accuracy == pytest.approx(correct / 6)
    assert evaluation.correct + evaluation.incorrect + evaluation.unparseable + evaluation.errors == 6
    again = evaluate(db, EvalSpec(model=f"run:{run_id}", task="procedural", split="test", max_new_tokens=24))
    assert again.evaluation_id == report.evaluation_id and again.generated == 0 and again.correct == report.correct

    with db.read() as session:
        table = collect_report(session)
    assert [(r.training_run_id, r.snapshot, r.task, r.split) for r in table.rows] == [
        (run_id, ref, "procedural", "test")
    ]
    plots = write_plots(table, tmp_path / "report")
    assert [p.name for p in plots] == ["loss_curves.png", "accuracy.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)

    # The trainer's own check: an export row whose problem is in a test split is refused by name.
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    (tampered / "manifest.json").write_text((folder / "data" / "manifest.json").read_text())
    rows = (folder / "data" / "train.jsonl").read_bytes().splitlines()
    row = orjson.loads(rows[0])
    row["problem_id"] = min(test_ids)
    (tampered / "train.jsonl").write_bytes(b"\n".join([*rows, orjson.dumps(row)]) + b"\n")
    with db.read() as session, pytest.raises(CurationError, match=f"problem {min(test_ids)} is in evaluation split"):
        read_export(session, tampered)


def test_unfinished_runs_are_not_evaluated_and_formats_are_checked(sqlite_db: Database, tiny_student: Path) -> None:
    db = sqlite_db
    ref = reference_snapshot(db)
    with db.transaction() as session, pytest.raises(CurationError, match="--format 'tokenized'"):
        create_training_run(session, ref, str(tiny_student), TrainConfig(format="tokenized"))
    with db.transaction() as session:
        run_id = create_training_run(session, ref, str(tiny_student), TrainConfig()).id
    with pytest.raises(CurationError, match=f"training run {run_id} is pending"):
        evaluate(db, EvalSpec(model=f"run:{run_id}", task="procedural", split="test"))


def test_an_export_is_read_record_by_record_whatever_its_text_holds(sqlite_db: Database, tmp_path: Path) -> None:
    # GSM8K's text holds U+2028 and the like, which JSON leaves unescaped and str.splitlines() splits at.
    with sqlite_db.transaction() as session:
        ingest_procedural(session, count=2, seed=0, split="train")
        ids = list(session.execute(select(Problem.id).order_by(Problem.id)).scalars())
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "pad", "files": [{"path": "train.jsonl"}]}))
    texts = ["a\u2028b", "c\x85d\x0ce\u2029f"]
    records = [
        orjson.dumps({"prompt": t, "completion": t + "!", "problem_id": i}) for t, i in zip(texts, ids, strict=True)
    ]
    (tmp_path / "train.jsonl").write_bytes(b"\n".join(records) + b"\n")
    with sqlite_db.read() as session:
        examples = read_export(session, tmp_path)
    assert [(e.prompt, e.completion, e.problem_id) for e in examples] == [
        (t, t + "!", i) for t, i in zip(texts, ids, strict=True)
    ]
    (tmp_path / "train.jsonl").write_bytes(records[0] + b"\n" + records[1][:20] + b"\n")
    with sqlite_db.read() as session, pytest.raises(CurationError, match=r"train.jsonl:2: not an export record"):
        read_export(session, tmp_path)
