"""The `curation` command, run through its entry point as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, PostgresFactory


def curation(*args: str, url: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-c", "from curation.cli.app import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"CURATION_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"curation {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no schema at all, as on a fresh machine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cli.db'}"
    factory: PostgresFactory = request.getfixturevalue("postgres_factory")
    return factory.create("cli")


@pytest.mark.slow
def test_fresh_database_gsm8k_stats_and_sql(empty_url: str, shared_data: Path) -> None:
    url = empty_url
    curation("db", "upgrade", url=url)
    gsm8k = [str(shared_data / "gsm8k/train.jsonl"), str(shared_data / "gsm8k/test.jsonl")]
    first = curation("ingest", "gsm8k", *gsm8k, url=url)
    assert "new 8,792" in first.stdout
    second = curation("ingest", "gsm8k", *gsm8k, url=url)
    assert "new 0, already stored 8,792" in second.stdout

    stats = curation("stats", url=url).stdout
    assert "│ gsm8k │ test  │ eval    │ 1,319    │" in stats
    assert "│ gsm8k │ train │ train   │ 7,473    │" in stats

    curation(
        "import-outputs",
        str(shared_data / "teacher_outputs/program_of_thoughts/gsm8K_s0_e-1_11_17_10_20.jsonl"),
        "--task",
        "gsm8k",
        "--split",
        "test",
        "--teacher",
        "code-davinci-002",
        "--style",
        "program",
        url=url,
    )
    rows = curation("sql", "SELECT task, split, teacher, generations FROM quality", "--format", "json", url=url).stdout
    assert [json.loads(line) for line in rows.splitlines()] == [
        {"task": "gsm8k", "split": "test", "teacher": "code-davinci-002", "generations": 1318}
    ]


def test_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    curation("db", "upgrade", url=url)
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"question": "q", "answer": "#### 1"}\n{oops\n')
    result = curation("ingest", "gsm8k", str(bad), url=url, check=False)
    assert result.returncode == 2
    assert f"error: {bad}:2: malformed JSON" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    result = curation("sql", "SELECT * FROM no_such_table", url=url, check=False)
    assert result.returncode == 2 and "query failed" in result.stderr


def test_sql_cannot_change_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    curation("db", "upgrade", url=url)
    curation("ingest-procedural", "--count", "5", url=url)
    refused = curation("sql", "DELETE FROM problem", url=url, check=False)
    assert refused.returncode == 2 and "readonly database" in refused.stderr
    out = curation("sql", "SELECT COUNT(*) AS n FROM problem", "--format", "csv", url=url).stdout
    assert out.split() == ["n", "5"]


def test_every_command_loads(tmp_path: Path) -> None:
    """`python -m curation` imports every command module (a broken import would kill workers)."""
    result = subprocess.run(
        [sys.executable, "-m", "curation", "--help"], capture_output=True, text=True, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "CURATION_DATA_DIR": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for command in ("ingest", "synth", "runs", "worker", "verify", "autoscale", "templates", "quickstart"):
        assert command in result.stdout


def test_kojima_log_import_then_verify_pending_then_a_new_verifier_version(tmp_path: Path, shared_data: Path) -> None:
    """`verify --pending` labels what import-outputs stored (its generations were never parsed);
    `--pending --verifier-version 2` relabels what version 1 labelled, keeping those labels."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    curation("db", "upgrade", url=url)
    curation("ingest", "coin_flip", str(shared_data / "symbolic/coin_flip.json"), "--ftcot-split",
             str(shared_data / "ftcot/split/coin_flip__default.json"), url=url)  # fmt: skip
    log = str(ROOT / "tests/data/kojima/coin_flip_zero_shot_cot.log")
    imported = curation("import-outputs", log, "--task", "coin_flip", "--teacher", "text-davinci-002",
                        "--style", "zero_shot_cot", url=url).stdout  # fmt: skip
    assert "3 records, 3 problems, 3 generations (3 new)" in " ".join(imported.split())
    old = curation("verify", "--pending", "--verifier-version", "1", url=url).stdout
    assert "parsed 3 generations" in old and "labelled 3 rationales" in old
    assert "labelled 0 rationales" in curation("verify", "--pending", "--verifier-version", "1", url=url).stdout
    new = curation("verify", "--pending", "--verifier-version", "2", url=url).stdout
    assert "parsed 0 generations" in new and "labelled 3 rationales: correct 3" in new
    rows = curation("sql", "SELECT verifier_version, COUNT(*) AS n FROM label GROUP BY verifier_version ORDER BY 1",
                    "--format", "csv", url=url).stdout.split()  # fmt: skip
    assert rows == ["verifier_version,n", "1,3", "2,3"]


def test_an_import_that_matches_nothing_fails(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    curation("db", "upgrade", url=url)
    curation("ingest-procedural", "--count", "3", url=url)
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text(json.dumps({"question": "No such question?", "generated": "The answer is 3."}) + "\n")
    result = curation("import-outputs", str(outputs), "--task", "procedural", "--teacher", "t", "--style",
                      "few_shot_cot", "--skip-unmatched", url=url, check=False)  # fmt: skip
    assert result.returncode == 2
    assert "nothing to import: none of its 1 records matches a stored problem" in " ".join(result.stderr.split())
    runs = curation("sql", "SELECT COUNT(*) AS n FROM synthesis_run", "--format", "csv", url=url).stdout.split()
    assert runs == ["n", "0"]


def test_a_run_whose_every_teacher_call_failed_exits_non_zero(tmp_path: Path) -> None:
    """A teacher nobody serves: every call fails (after the bounded retries), and synth says so."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    curation("db", "upgrade", url=url)
    curation("ingest-procedural", "--count", "2", url=url)
    result = curation("synth", "--task", "procedural", "--teacher", "openai:nobody", "--base-url",
                      "http://127.0.0.1:9/v1", "--template", "zero-shot-cot", "--request-timeout", "2", url=url,
                      check=False)  # fmt: skip
    message = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stdout + result.stderr
    assert "failed: every sample failed (no teacher call gave an answer)" in message
    assert "connection failed" in message and "--retry-failed" in message
