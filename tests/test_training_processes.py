"""`torchrun --nproc_per_node 2 -m curation.cli.app train ...` on CPU (gloo): two processes train
one run; the main process alone writes rows, the export and the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from curation.models import LanguageModel, TrainingRun, TrainingStatus
from tests.conftest import ROOT, fresh_sqlite
from tests.support.training_data import reference_snapshot


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_two_processes_train_one_run_and_only_the_main_one_writes(
    sqlite_template: Path, tiny_student: Path, tmp_path: Path
) -> None:
    db = fresh_sqlite(sqlite_template, tmp_path)
    ref = reference_snapshot(db, test=0)
    with db.read() as session:
        models_before = int(session.execute(select(func.count()).select_from(LanguageModel)).scalar_one())
    root = tmp_path / "runs"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "curation.cli.app", "train", "--snapshot", ref, "--base-model", str(tiny_student),
        "--max-steps", "4", "--batch-size", "2", "--save-steps", "2", "--learning-rate", "1e-3",
        "--precision", "fp32", "--output-root", str(root),
    ]  # fmt: skip
    environment = {**os.environ, "CURATION_DATABASE_URL": str(db.engine.url), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-6000:]
    assert done.stdout.count("training run #") == 2, done.stdout  # "#1 on ..." and its summary: once each

    with db.read() as session:
        runs = session.execute(select(TrainingRun)).scalars().all()
        assert len(runs) == 1
        run = runs[0]
        models = session.execute(select(LanguageModel)).scalars().all()
    # One base model row and one output model row, each written once.
    assert len(models) == models_before + 2
    assert run.status is TrainingStatus.completed and run.metrics is not None
    assert run.metrics["devices"]["world_size"] == 2 and run.metrics["steps"] == 4
    assert run.lease_holder is None
    folders = list(root.iterdir())
    assert [f.name for f in folders] == [Path(run.metrics["run_dir"]).name]
    assert sorted(p.name for p in folders[0].rglob("model") if p.is_dir()) == ["model"]
    assert (folders[0] / "model" / "tokenizer.json").is_file() and (folders[0] / "lineage.json").is_file()
    manifest = json.loads((folders[0] / "data" / "manifest.json").read_text())
    assert sorted(p.name for p in (folders[0] / "data").iterdir()) == sorted(
        ["manifest.json", *(f["path"] for f in manifest["files"])]
    )
    db.dispose()
