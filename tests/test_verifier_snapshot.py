"""A verifier trained from a snapshot's labelled members, by function and by `curation verifier train`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curation.cli.app import app
from curation.db.session import Database
from curation.errors import CurationError
from curation.settings import get_settings
from curation.snapshots.create import create_snapshot
from tests.support.tiny_model import build_tiny_llama
from tests.test_views import build_scenario
from trainer.verifier import examples_from_snapshot

ANY_TRAIN_PROGRAM = {"verdict": "any", "splits": ["train"], "kinds": ["program"], "dedupe": "none"}


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def test_snapshot_members_become_labelled_examples(db: Database) -> None:
    with db.transaction() as session:
        build_scenario(session)
        create_snapshot(session, "verifier-data", ANY_TRAIN_PROGRAM)
        create_snapshot(session, "only-correct", {"splits": ["train"], "kinds": ["program"]})
    with db.read() as session:
        data = examples_from_snapshot(session, "verifier-data@1")
        correct_only = examples_from_snapshot(session, "only-correct")
    assert (data.snapshot, correct_only.snapshot) == ("verifier-data@1", "only-correct@1")
    assert data.examples and all(e.question and e.source.startswith("rationale ") for e in data.examples)
    labels = [e.correct for e in data.examples]
    assert True in labels and False in labels  # correct, and incorrect / error / unparseable
    assert all(e.correct for e in correct_only.examples)
    with db.read() as session, pytest.raises(CurationError, match="no snapshot 'missing'"):
        examples_from_snapshot(session, "missing")


def test_verifier_train_command(
    sqlite_db: Database, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sqlite_db.transaction() as session:
        build_scenario(session)
        create_snapshot(session, "verifier-data", ANY_TRAIN_PROGRAM)
        create_snapshot(session, "only-correct", {"splits": ["train"], "kinds": ["program"]})
    monkeypatch.setenv("CURATION_DATABASE_URL", sqlite_db.url)
    get_settings.cache_clear()
    out = tmp_path / "verifier"
    runner = CliRunner()
    args = ["verifier", "train", "--base", str(tiny_model_dir), "--out", str(out), "--epochs", "1"]
    result = runner.invoke(app, [*args, "--snapshot", "verifier-data@1"])
    assert result.exit_code == 0, result.output
    assert "training accuracy" in result.output
    manifest = json.loads((out / "verifier.json").read_text())
    assert 0 < manifest["correct"] < manifest["examples"]
    assert manifest["trained_from"] == "snapshot verifier-data@1"
    refused = runner.invoke(app, [*args, "--snapshot", "only-correct@1"])
    # The app raises; `curation`'s entry point prints CurationErrors without a traceback.
    assert isinstance(refused.exception, CurationError) and "are correct" in str(refused.exception)
