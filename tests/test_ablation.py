"""`curation report --ablation` end to end on a tiny random Llama with a tiny limit: every decoding
row is an evaluation (run when missing, reused after), the table, CSV and PNG are written, and the
refinement rounds are found along the chain of runs they grew from."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from curation.cli.app import app
from curation.db.session import Database
from curation.ingestion.service import ingest_procedural
from curation.models import Evaluation
from tests.support.tiny_model import build_tiny_llama
from trainer.ablation import AblationSpec, decodings, run_ablation, write_ablation
from workers.sandbox import Sandbox


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def test_the_plan_has_greedy_then_each_selection_and_scorer_at_each_n() -> None:
    spec = AblationSpec(model="m", task="t", ns=(1, 2, 4), selections=("majority",), scorer_sets=(("exec",),))
    plans = decodings(spec)
    assert [(m, n, v) for m, n, v, _ in plans] == [
        ("greedy", 1, "-"),
        ("best-of-N", 1, "majority"), ("step-beam", 1, "exec"),
        ("best-of-N", 2, "majority"), ("step-beam", 2, "exec"),
        ("best-of-N", 4, "majority"), ("step-beam", 4, "exec"),
    ]  # fmt: skip
    assert [d.expand for m, _, _, d in plans if m == "step-beam"] == [1, 2, 2]  # expand = min(M, N)
    assert [d.samples for m, _, _, d in plans if m == "best-of-N"] == [1, 2, 4]


@pytest.mark.slow
def test_ablation_runs_the_missing_evaluations_then_reuses_them(
    sqlite_db: Database, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = sqlite_db
    with db.transaction() as session:
        ingest_procedural(session, count=3, seed=1, split="test")
    spec = AblationSpec(
        model=str(tiny_model_dir), task="procedural", split="test", ns=(1, 2), limit=2, prompt_format="pad",
        max_new_tokens=16, max_steps=3, device="cpu", scorer_sets=(("exec",), ("exec", "logprob")),
    )  # fmt: skip
    with Sandbox(in_flight=4) as sandbox:
        rows = run_ablation(db, spec, sandbox_factory=lambda: sandbox)
        assert len(rows) == 1 + 2 * (2 + 2)
        with db.read() as session:
            assert session.execute(select(func.count()).select_from(Evaluation)).scalar_one() == len(rows)
        assert len({r.evaluation_id for r in rows}) == len(rows)
        assert all(r.problems == 2 and r.runnable is not None and r.student_tokens for r in rows)
        assert all(r.sandbox_programs and r.sandbox_programs >= 2 and r.wall_seconds for r in rows)
        assert all(r.teacher_tokens == 0 for r in rows)  # decoding calls no teacher
        again = run_ablation(db, spec, sandbox_factory=lambda: sandbox)
    assert again == rows  # every evaluation found again, nothing generated, the same figures
    written = write_ablation(rows, tmp_path / "report", "ablation-tiny")
    assert [p.name for p in written] == ["ablation-tiny.csv", "ablation-tiny.png"]
    with written[0].open() as handle:
        table = list(csv.DictReader(handle))
    assert [(t["method"], t["n"], t["variant"]) for t in table][:3] == [
        ("greedy", "1", "-"), ("best-of-N", "1", "majority"), ("best-of-N", "1", "exec-vote"),
    ]  # fmt: skip
    assert written[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The command: the same rows (all stored), a table and where the files are.
    monkeypatch.setenv("CURATION_DATABASE_URL", str(db.engine.url))
    result = CliRunner().invoke(
        app,
        ["report", "--ablation", "--model", str(tiny_model_dir), "--task", "procedural", "--n", "1,2",
         "--limit", "2", "--format", "pad", "--max-new-tokens", "16", "--max-steps", "3",
         "--scorers", "exec,exec+logprob", "--out", str(tmp_path / "cli")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "greedy" in result.output and "exec+logprob" in result.output
    assert (tmp_path / "cli").is_dir() and any(p.suffix == ".png" for p in (tmp_path / "cli").iterdir())
    with db.read() as session:
        assert session.execute(select(func.count()).select_from(Evaluation)).scalar_one() == len(rows)
