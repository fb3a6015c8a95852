"""`curation report`: one row per evaluation with its decoding (a run can have greedy, best-of-N
and step-beam evaluations of one split), and an accuracy plot of the greedy ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from curation.db.session import Database
from curation.ingestion.service import ingest_procedural
from curation.models import Evaluation, LanguageModel, ModelRole, Task, TrainingStatus
from tests.conftest import ROOT
from trainer.report import collect_report, decoding_label, plotted_rows, write_plots

DECODINGS: list[tuple[dict[str, Any] | None, str]] = [
    (None, "greedy"),  # made before decodings were stored
    ({"method": "greedy", "format": "pad", "limit": None}, "greedy"),
    ({"method": "sample", "samples": 4, "temperature": 0.8, "select": "exec-vote", "seed": 0}, "sample 4 exec-vote"),
    ({"method": "step-beam", "beams": 4, "expand": 2, "scorers": ["exec", "logprob"]}, "step-beam 4x2 exec+logprob"),
    ({"method": "greedy", "repair_rounds": 2}, "greedy +2 repair rounds"),
]


def test_each_evaluation_is_listed_with_its_decoding(db: Database, tmp_path: Path) -> None:
    with db.transaction() as session:
        ingest_procedural(session, count=2, seed=0, split="test")
        task = session.execute(select(Task).where(Task.name == "procedural")).scalar_one()
        model = LanguageModel(role=ModelRole.student, backend="transformers", name="a-student", revision="x")
        session.add(model)
        session.flush()
        for index, (decoding, _) in enumerate(DECODINGS):
            evaluation = Evaluation(
                model_id=model.id, task_id=task.id, split="test", decoding=decoding,
                status=TrainingStatus.completed, problems=2, correct=index % 3, accuracy=(index % 3) / 2,
            )  # fmt: skip
            session.add(evaluation)
    with db.read() as session:
        report = collect_report(session)
    assert [r.decoding for r in report.rows] == [label for _, label in DECODINGS]
    assert [r.decoding for r in plotted_rows(report)] == ["greedy", "greedy"]
    assert [p.name for p in write_plots(report, tmp_path / "plots")] == ["accuracy.png"]

    url = db.engine.url.render_as_string(hide_password=False)
    result = subprocess.run(
        [sys.executable, "-c", "from curation.cli.app import main; main()", "report", "--out", str(tmp_path / "cli")],
        capture_output=True, text=True, cwd=ROOT,
        env={"CURATION_DATABASE_URL": url, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "COLUMNS": "250"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "decoding" in result.stdout
    for _, label in DECODINGS:
        assert label in result.stdout


def test_decoding_labels() -> None:
    assert decoding_label(None) == "greedy"
    assert decoding_label({"method": "sample", "samples": 8, "select": "majority"}) == "sample 8 majority"
    beam = {"method": "step-beam", "beams": 2, "expand": 1, "scorers": ["exec"]}
    assert decoding_label(beam) == "step-beam 2x1 exec"
