"""Snapshots: content-addressed, immutable at the database, refusing evaluation problems; exports
in the students' formats that `datasets` reads, written so that a crash leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from curation.answers.verdict import VERIFIER_VERSION
from curation.db import triggers
from curation.db.session import Database
from curation.errors import CurationError
from curation.ingestion.service import ingest_files, ingest_procedural
from curation.models import AnswerType, Label, Snapshot, SnapshotMember, TemplateStyle, Verdict
from curation.references import import_gsm8k_references, import_procedural_references
from curation.snapshots.create import create_snapshot, resolve_snapshot
from curation.snapshots.export import FORMATS, export_snapshot
from curation.snapshots.manifest import diff_snapshots
from curation.teacher_outputs import OutputFields, import_teacher_outputs
from tests.conftest import ROOT, _truncate_all
from workers.sandbox import Limits, Sandbox
from workers.verification import parse_run, verify

FIXTURES = ROOT / "tests" / "data" / "ftcot"
PROGRAMS = {"tasks": ["procedural"], "splits": ["train"], "kinds": ["program"]}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(Limits(wall_seconds=2.0), in_flight=4) as box:
        yield box


def _procedural(db: Database, sandbox: Sandbox, train: int = 30, test: int = 10) -> int:
    """Procedural problems with their reference rationales, verified; the reference run's id."""
    with db.transaction() as session:
        ingest_procedural(session, count=train, seed=7)
        if test:
            ingest_procedural(session, count=test, seed=7, offset=train, split="test")
    with db.transaction() as session:
        report = import_procedural_references(session)
    verify(db, sandbox, run_id=report.run_id)
    return report.run_id


def _size(path: Path) -> int:
    """0 for a file gone since it was listed (renamed into place, or cleaned up)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _counts(db: Database) -> tuple[int, int]:
    with db.read() as session:
        return (
            session.execute(select(func.count(Snapshot.id))).scalar_one(),
            session.execute(select(func.count()).select_from(SnapshotMember)).scalar_one(),
        )


def test_the_same_spec_gives_the_same_version_and_writes_nothing(db: Database, sandbox: Sandbox) -> None:
    _procedural(db, sandbox)
    with db.transaction() as session:
        first, created = create_snapshot(session, "proc", PROGRAMS)
        ref, digest = first.ref, first.content_sha256
    assert created and ref == "proc@1"
    before = _counts(db)
    assert before == (1, 30)
    with db.transaction() as session:
        again, created_again = create_snapshot(session, "proc", dict(PROGRAMS))
        assert (again.ref, again.content_sha256, created_again) == (ref, digest, False)
    assert _counts(db) == before
    with db.read() as session:
        manifest = resolve_snapshot(session, "proc").manifest
    assert manifest is not None and manifest["content_sha256"] == digest
    assert manifest["counts"]["by_task_split_origin_kind"] == [
        {"task": "procedural", "split": "train", "origin": "reference", "kind": "program", "members": 30}
    ]
    assert manifest["sources"][0]["teacher"] == "procedural-generator"
    assert manifest["verifiers"] == {f"program-execution@{VERIFIER_VERSION}": 30}
    assert manifest["schema_revision"] and manifest["code_version"]


@pytest.mark.postgres
def test_the_same_hash_on_sqlite_and_postgresql(
    sqlite_db: Database, request: pytest.FixtureRequest, sandbox: Sandbox
) -> None:
    postgres = Database(request.getfixturevalue("postgres_migrated"))
    _truncate_all(postgres)
    # Different ids on the two sides: the hash covers content and source keys, not ids.
    with sqlite_db.transaction() as session:
        ingest_procedural(session, count=5, seed=99, task="other")
    hashes = []
    for db in (sqlite_db, postgres):
        _procedural(db, sandbox)
        with db.transaction() as session:
            snapshot, _ = create_snapshot(
                session, "both", {"tasks": ["procedural"], "splits": ["train"], "max_per_problem": 1, "seed": 3}
            )
            hashes.append((snapshot.content_sha256, snapshot.row_count))
    postgres.dispose()
    assert hashes[0] == hashes[1] and hashes[0][1] == 30


def test_a_changed_label_makes_a_new_version_and_the_old_reads_back_unchanged(
    db: Database, sandbox: Sandbox, tmp_path: Path
) -> None:
    _procedural(db, sandbox)
    with db.transaction() as session:
        old, _ = create_snapshot(session, "proc", PROGRAMS)
        old_hash = old.content_sha256
    with db.read() as session:
        export_snapshot(session, "proc@1", "pad", tmp_path / "before")
        member = session.execute(select(SnapshotMember.rationale_id).where(SnapshotMember.position == 0)).scalar_one()
    with db.transaction() as session:  # a later verifier version judges one member wrong
        later = Label(
            rationale_id=member, verifier="program-execution", verifier_version="later", verdict=Verdict.incorrect
        )
        session.add(later)
    with db.transaction() as session:
        new, created = create_snapshot(session, "proc", PROGRAMS)
        assert created and new.ref == "proc@2" and new.content_sha256 != old_hash and new.row_count == 29
    with db.read() as session:
        export_snapshot(session, "proc@1", "pad", tmp_path / "after")
        assert resolve_snapshot(session, "proc@1").content_sha256 == old_hash
        diff = diff_snapshots(session, resolve_snapshot(session, "proc@1"), resolve_snapshot(session, "proc@2"))
    assert (tmp_path / "before" / "train.jsonl").read_bytes() == (tmp_path / "after" / "train.jsonl").read_bytes()
    assert (diff.rationales_removed, diff.rationales_added, diff.problems_removed) == (1, 0, 1)
    assert diff.examples_removed == [member] and diff.per_task == {"procedural": (30, 29)}


def test_a_gsm8k_test_problem_is_refused_and_named(db: Database, shared_data: Path, tmp_path: Path) -> None:
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train_lines = (shared_data / "gsm8k" / "train.jsonl").read_text().splitlines()[:5]
    test_lines = (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines()[:3]
    train.write_text("\n".join(train_lines) + "\n")
    test.write_text("\n".join(test_lines) + "\n")
    with db.transaction() as session:
        ingest_files(session, "gsm8k", [train, test])
        import_gsm8k_references(session, [train, test])
    spec = {"tasks": ["gsm8k"], "kinds": ["cot"], "verdict": "any"}
    refusal = r"refused.*3 problems would enter: gsm8k/test/"
    with pytest.raises(CurationError, match=refusal) as refused, db.transaction() as session:
        create_snapshot(session, "leaky", spec)
    assert "in an evaluation split" in str(refused.value)
    assert _counts(db) == (0, 0)

    with db.transaction() as session:
        dropped, _ = create_snapshot(session, "dropped", {**spec, "drop_contaminated": True})
        manifest = dropped.manifest or {}
        assert dropped.row_count == 5
    assert manifest["contamination"]["refused_problems"] == 3 and manifest["contamination"]["dropped"]
    assert manifest["contamination"]["ngram_overlap"]["training_questions"] == 5

    # A copy of a test question under another task, in a training split, is refused by its fingerprint.
    question = json.loads(test_lines[0])["question"]
    copy, outputs = tmp_path / "copy-train.jsonl", tmp_path / "outputs.jsonl"
    copy.write_text(json.dumps({"question": "  " + question.upper(), "answer": "18"}) + "\n")
    outputs.write_text(json.dumps({"question": question, "generated": "So the answer is 18."}) + "\n")
    with db.transaction() as session:
        ingest_files(session, "mine", [copy], format="jsonl", answer_type=AnswerType.number)
        imported = import_teacher_outputs(
            session, outputs, task="mine", teacher="t", style=TemplateStyle.zero_shot_cot
        )
    parse_run(db, imported.run_id)
    refusal = r"mine/train/.*its question is that of evaluation problem gsm8k/test/"
    with pytest.raises(CurationError, match=refusal), db.transaction() as session:
        create_snapshot(session, "copied", {"tasks": ["mine"], "verdict": "any"})

    # An evaluation snapshot takes evaluation problems only.
    with db.transaction() as session:
        heldout, _ = create_snapshot(
            session, "heldout", {"tasks": ["gsm8k"], "splits": ["test"], "verdict": "any", "purpose": "evaluation"}
        )
        assert (heldout.row_count, heldout.kind) == (6, "evaluation")  # CoT and program for each of 3
    with pytest.raises(CurationError, match="not from an evaluation split"), db.transaction() as session:
        create_snapshot(session, "heldout-bad", {"tasks": ["gsm8k"], "verdict": "any", "purpose": "evaluation"})


def test_sealed_snapshots_cannot_change_at_the_database(db: Database, sandbox: Sandbox) -> None:
    _procedural(db, sandbox, train=5, test=0)
    with db.transaction() as session:
        snapshot, _ = create_snapshot(session, "frozen", PROGRAMS)
        snapshot_id = snapshot.id
    with db.read() as session:
        rationale_id = session.execute(select(SnapshotMember.rationale_id).limit(1)).scalar_one()
    statements = [
        "UPDATE snapshot_member SET position = position + 100",
        "DELETE FROM snapshot_member",
        f"INSERT INTO snapshot_member (snapshot_id, rationale_id, position, problem_id) "
        f"SELECT {snapshot_id}, id, 999, problem_id FROM rationale WHERE kind = 'cot' LIMIT 1",
        "UPDATE snapshot SET content_sha256 = 'x'",
        "UPDATE snapshot SET manifest = NULL",
        "UPDATE snapshot SET sealed = FALSE",
        "DELETE FROM snapshot",
        f"UPDATE rationale SET body = 'changed' WHERE id = {rationale_id}",
        "UPDATE problem SET question = 'changed'",
    ]
    for statement in statements:
        with pytest.raises(sa.exc.IntegrityError, match="sealed snapshot"), db.engine.begin() as connection:
            connection.execute(sa.text(statement))
    with db.engine.begin() as connection:  # what a snapshot does not export may change
        connection.execute(sa.text(f"UPDATE rationale SET answer = '42' WHERE id = {rationale_id}"))
    assert _counts(db) == (1, 5)


def test_the_guards_exist_at_the_head_revision(db: Database) -> None:
    with db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
            expected = set(triggers.POSTGRES_TRIGGER_NAMES)
        else:
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            expected = set(triggers.SQLITE_TRIGGER_NAMES)
        names = set(connection.execute(sa.text(query)).scalars())
    assert expected <= names, "a migration rebuilt a guarded table without creating its triggers again"


def test_fine_tune_cot_format_byte_for_byte(db: Database, sandbox: Sandbox, shared_data: Path, tmp_path: Path) -> None:
    problems = tmp_path / "train_rand_split.jsonl"
    with (shared_data / "commonsenseqa" / "train_rand_split.jsonl").open() as source:
        problems.write_text("".join(next(source) for _ in range(3)))
    with db.transaction() as session:
        ingest_files(session, "commonsense_qa", [problems])
        report = import_teacher_outputs(
            session, FIXTURES / "rationales.jsonl", task="commonsense_qa", teacher="fixture",
            style=TemplateStyle.zero_shot_cot, fields=OutputFields(output="rationale", gold="answer"),
        )  # fmt: skip
    verify(db, sandbox, run_id=report.run_id)
    with db.transaction() as session:
        create_snapshot(session, "csqa", {"tasks": ["commonsense_qa"]})
    with db.read() as session:
        export_snapshot(session, "csqa@1", "ftcot", tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    expected = (FIXTURES / "finetune_cot_token.jsonl").read_bytes()
    by_question = {json.loads(line)["prompt"]: line for line in expected.decode().split("\n")}
    assert len(rows) == 3
    ours = []
    for row in rows:
        line = json.dumps({"prompt": row["prompt"], "completion": row["completion"]})
        assert line.encode() == by_question[row["prompt"]].encode()
        ours.append(line)
    assert sorted(ours) == sorted(expected.decode().split("\n"))


def _tokenizer_dir(tmp_path: Path) -> Path:
    from transformers import AutoTokenizer

    from workers.teachers.embedded_model import gguf_path

    source = gguf_path()
    folder = tmp_path / "tokenizer"
    AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name).save_pretrained(folder)
    return folder


def test_datasets_reads_every_format(db: Database, sandbox: Sandbox, tmp_path: Path) -> None:
    import datasets

    _procedural(db, sandbox, train=12, test=0)
    with db.transaction() as session:
        create_snapshot(session, "both-kinds", {"tasks": ["procedural"]})
        create_snapshot(session, "cot", {"tasks": ["procedural"], "kinds": ["cot"]})
        create_snapshot(session, "programs", PROGRAMS)
    tokenizer = _tokenizer_dir(tmp_path)
    snapshot_for = {"ftcot": "cot", "pad": "programs", "repair": "programs"}
    for fmt in FORMATS:
        for file_format in ("jsonl", "parquet"):
            out = tmp_path / f"{fmt}-{file_format}"
            with db.read() as session:
                manifest = export_snapshot(
                    session, snapshot_for.get(fmt, "both-kinds"), fmt, out, file_format=file_format,
                    tokenizer=str(tokenizer) if fmt == "tokenized" else None, row_group_size=5,
                )  # fmt: skip
            on_disk = json.loads((out / "manifest.json").read_text())
            assert [f.path for f in manifest.files] == [f"train.{file_format}"]
            assert on_disk["files"] == [
                {
                    "path": f"train.{file_format}",
                    "split": "train",
                    "sha256": f.sha256,
                    "rows": f.rows,
                    "bytes": f.bytes,
                }
                for f in manifest.files
            ]
            loaded = datasets.load_dataset(
                "json" if file_format == "jsonl" else "parquet", data_files=str(out / f"train.{file_format}"),
                cache_dir=str(tmp_path / "hf-cache"),
            )["train"]  # fmt: skip
            assert len(loaded) == manifest.rows == (12 if fmt in snapshot_for else 24)
            row = loaded[0]
            for key in ("rationale_id", "generation_id", "synthesis_run_id", "problem_id", "task", "split", "kind"):
                assert row[key] is not None, (fmt, key)
            if fmt == "tokenized":
                prompt_tokens = row["labels"].count(-100)
                assert 0 < prompt_tokens < row["length"] == len(row["input_ids"]) == len(row["labels"])
                assert row["labels"][prompt_tokens:] == row["input_ids"][prompt_tokens:]
            elif fmt == "trl-messages":
                assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
            else:
                assert row["prompt"] and row["completion"]
    pad = json.loads((tmp_path / "pad-jsonl" / "train.jsonl").read_text().splitlines()[0])
    assert pad["completion"].startswith("def solution():") and pad["prompt"].endswith("\n")
    import pyarrow.parquet as pq  # the Parquet files have the row groups asked for

    assert pq.ParquetFile(tmp_path / "pad-parquet" / "train.parquet").metadata.num_row_groups == 3


def test_export_refuses_a_format_its_rationales_do_not_fit(db: Database, sandbox: Sandbox, tmp_path: Path) -> None:
    _procedural(db, sandbox, train=3, test=0)
    with db.transaction() as session:
        create_snapshot(session, "both-kinds", {"tasks": ["procedural"]})
    with db.read() as session, pytest.raises(CurationError, match="takes cot rationales only"):
        export_snapshot(session, "both-kinds@1", "ftcot", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("")
    with db.read() as session, pytest.raises(CurationError, match="not an empty directory"):
        export_snapshot(session, "both-kinds@1", "pad", tmp_path / "full")


_EXPORTER = """
import sys
from pathlib import Path
from curation.db.session import Database
from curation.snapshots.export import export_snapshot
import curation.snapshots.export as export

export.READ_BATCH = 50
original = export._text_row
def slow(member):
    import time
    time.sleep(0.002)
    return original(member)
export._text_row = slow
db = Database(sys.argv[1])
with db.read() as session:
    export_snapshot(session, "big@1", "trl-prompt-completion", Path(sys.argv[2]), file_format=sys.argv[3])
print("finished")
"""


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_kill_9_mid_export_leaves_nothing_under_the_final_name(
    sqlite_db: Database, sandbox: Sandbox, tmp_path: Path, file_format: str
) -> None:
    with sqlite_db.transaction() as session:
        ingest_procedural(session, count=3000, seed=1)
    with sqlite_db.transaction() as session:
        import_procedural_references(session)
    with sqlite_db.engine.begin() as connection:  # labels as the verifier writes them, without running 3,000 programs
        connection.execute(
            sa.text(
                "INSERT INTO label (rationale_id, verifier, verifier_version, verdict, created_at) "
                "SELECT id, 'answer-match', '3', 'correct', CURRENT_TIMESTAMP FROM rationale WHERE kind = 'cot'"
            )
        )
    with sqlite_db.transaction() as session:
        create_snapshot(session, "big", {"kinds": ["cot"]})
    out = tmp_path / "export"
    script = tmp_path / "exporter.py"
    script.write_text(_EXPORTER)
    process = subprocess.Popen(
        [sys.executable, str(script), sqlite_db.url, str(out), file_format], cwd=ROOT, stdout=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the export is under way: a partial file holds rows
        partial = [p for p in tmp_path.glob(".export.partial-*/*.tmp") if _size(p) > 0]
        if partial:
            break
        time.sleep(0.05)
    assert partial, "the export never started writing"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()
    assert not list(tmp_path.glob("export/*")) and not (tmp_path / "export" / "manifest.json").exists()


SNAPSHOT_QUERIES = re.findall(
    r"```sql\n(.*?)```",
    (ROOT / "docs/sql.md").read_text().split("## Snapshots", 1)[1].split("## Refinement rounds")[0],
    flags=re.DOTALL,
)


def test_the_snapshot_examples_in_docs_sql_answer(db: Database, sandbox: Sandbox) -> None:
    _procedural(db, sandbox, train=4, test=0)
    with db.transaction() as session:
        create_snapshot(session, "proc", {"tasks": ["procedural"]})
        first = session.execute(select(SnapshotMember.rationale_id).order_by(SnapshotMember.position)).first()
        assert first is not None
        session.add(Label(rationale_id=first[0], verifier="x", verifier_version="later", verdict=Verdict.incorrect))
    assert len(SNAPSHOT_QUERIES) >= 5
    with db.read() as session:
        answers = [
            session.execute(sa.text(query.replace("= 1\n", f"= {first[0]}\n"))).all() for query in SNAPSHOT_QUERIES
        ]
        composition = session.execute(
            sa.text("SELECT task, origin, kind, verdict, members FROM snapshot_composition ORDER BY kind")
        ).all()
    assert all(answers), "every example returns rows on a database with a snapshot"
    assert [tuple(row) for row in composition] == [
        ("procedural", "reference", "cot", "correct", 4),
        ("procedural", "reference", "program", "correct", 4),
    ]


def _cot_outputs(db: Database, sandbox: Sandbox, tmp_path: Path, outputs: list[str]) -> None:
    """Three procedural train problems, each with these teacher CoT outputs, verified."""
    with db.transaction() as session:
        ingest_procedural(session, count=3, seed=5)
    with db.read() as session:
        golds = session.execute(sa.text("SELECT question, gold_answer FROM problem ORDER BY id")).all()
    path = tmp_path / "outputs.jsonl"
    path.write_text(
        "".join(
            json.dumps({"question": question, "generated": [o.format(gold=gold) for o in outputs]}) + "\n"
            for question, gold in golds
        )
    )
    with db.transaction() as session:
        report = import_teacher_outputs(
            session, path, task="procedural", teacher="t", style=TemplateStyle.few_shot_cot
        )
    verify(db, sandbox, run_id=report.run_id)


def test_spec_selection_dedupe_k_bounds_and_where(db: Database, sandbox: Sandbox, tmp_path: Path) -> None:
    outputs = [
        "Add them up. The answer is {gold}.",
        "Add  them up.\nThe answer is {gold}.",  # the same after whitespace normalisation
        "First add them all up carefully. The answer is {gold}.",
        "First add them all up carefully now. The answer is {gold}.",  # near: word 3-grams mostly shared
        "Count what is left after each step, one step at a time, then say it. The answer is {gold}.",
        "The answer is 1000001.",  # wrong
    ]
    _cot_outputs(db, sandbox, tmp_path, outputs)

    def members(name: str, **spec: Any) -> int:
        with db.transaction() as session:
            snapshot, _ = create_snapshot(session, name, {"tasks": ["procedural"], **spec})
            return snapshot.row_count

    assert members("exact") == 3 * 4
    assert members("none", dedupe="none") == 3 * 5
    assert members("near", dedupe="near", near_threshold=0.5) == 3 * 3
    assert members("any", verdict="any", dedupe="none") == 3 * 6
    assert members("wrong", verdict="incorrect") == 3
    assert members("short", max_chars=40) == 3  # the other short one repeats it
    assert members("long", min_chars=60) == 3
    assert members("where", where="body LIKE 'First%' AND teacher = 't'") == 3 * 2
    assert members("colon", where="body NOT LIKE '%:%'") == 3 * 4
    with db.transaction() as session:
        one, _ = create_snapshot(session, "k", {"tasks": ["procedural"], "max_per_problem": 1, "seed": 1})
        chosen = set(
            session.execute(select(SnapshotMember.rationale_id).where(SnapshotMember.snapshot_id == one.id)).scalars()
        )
        again, created = create_snapshot(session, "k", {"tasks": ["procedural"], "max_per_problem": 1, "seed": 1})
        other, _ = create_snapshot(session, "k2", {"tasks": ["procedural"], "max_per_problem": 1, "seed": 2})
        assert one.row_count == 3 and not created and again.id == one.id
        assert other.content_sha256 != one.content_sha256
    assert len(chosen) == 3


def test_bad_specs_are_refused_with_the_reason(db: Database, sandbox: Sandbox) -> None:
    _procedural(db, sandbox, train=2, test=0)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"verdict": "great"}, "verdict must be any or one of"),
        ({"tasks": []}, "an empty list selects nothing"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"where": "no_such_column = 1"}, "the spec's where clause .* does not run"),
        ({"tasks": ["nothing-here"]}, "selects no rationale"),
    ]
    for spec, message in cases:
        with pytest.raises(CurationError, match=message), db.transaction() as session:
            create_snapshot(session, "bad", spec)
    with pytest.raises(CurationError, match="NAME@N names a version"), db.transaction() as session:
        create_snapshot(session, "a@b", {})
    assert _counts(db) == (0, 0)
    with db.read() as session, pytest.raises(CurationError, match="no snapshot 'missing@3'"):
        resolve_snapshot(session, "missing@3")


@pytest.mark.postgres
def test_a_spec_where_runs_as_a_role_that_can_only_read(postgres_migrated: str, sandbox: Sandbox) -> None:
    """A spec file can come from anyone: its SQL must not write, signal or reach the server's files,
    which the operator's own role (a superuser here, as in the README) could."""
    db = Database(postgres_migrated)
    _truncate_all(db)
    try:
        _procedural(db, sandbox, train=2, test=0)
        with db.read() as session:
            sequence = session.execute(sa.text("SELECT last_value FROM problem_id_seq")).scalar_one()
            large_objects = session.execute(sa.text("SELECT COUNT(*) FROM pg_largeobject_metadata")).scalar_one()
        refused = {
            "setval('problem_id_seq', 1) > 0": "permission denied for sequence",
            "(SELECT COUNT(*) FROM pg_ls_dir('.')) > 0": "permission denied",
            "pg_read_file('/etc/hostname') <> ''": "permission denied",
            "set_config('role', 'postgres', true) <> ''": "permission denied to set role",
            "(CASE WHEN rationale_id > 0 THEN 1 / 0 ELSE 1 END) = 1": "division by zero",  # at a fetch
        }
        for where, refusal in refused.items():
            with (
                pytest.raises(CurationError, match=f"the spec's where clause .* does not run: .*{refusal}"),
                db.transaction() as session,
            ):
                create_snapshot(session, "hostile", {"verdict": "any", "where": where})
        with db.transaction() as session:  # PostgreSQL lets this write in a READ ONLY transaction: it is rolled back
            create_snapshot(session, "lo", {"verdict": "any", "where": "lo_from_bytea(0, 'x'::bytea) > 0"})
        with db.read() as session:
            assert session.execute(sa.text("SELECT last_value FROM problem_id_seq")).scalar_one() == sequence
            assert (
                session.execute(sa.text("SELECT COUNT(*) FROM pg_largeobject_metadata")).scalar_one() == large_objects
            )
        assert _counts(db) == (1, 4)
        with db.transaction() as session:  # it runs as the reader, on this transaction's view of the data
            snapshot, _ = create_snapshot(
                session, "as-reader", {"verdict": "any", "where": "current_user = 'curation_reader'"}
            )
            assert snapshot.row_count == 4
        with (
            pytest.raises(CurationError, match=r"the spec's where clause .* does not run: .*statement timeout"),
            db.transaction() as session,
        ):
            slow = {"verdict": "any", "where": "pg_sleep(0.3) IS NOT NULL"}
            create_snapshot(session, "slow", slow, sql_timeout_s=0.1)
        elsewhere = make_url(postgres_migrated).set(username="curation_reader", database="postgres")
        with (
            pytest.raises(CurationError, match=r"could not be opened: .*CURATION_SQL_URL must reach the same primary"),
            db.transaction() as session,
        ):
            create_snapshot(
                session, "elsewhere", {"verdict": "any", "where": "TRUE"},
                sql_url=elsewhere.render_as_string(hide_password=False),
            )  # fmt: skip
        with db.transaction() as session:  # the system's own SQL (refinement rounds) runs as the caller
            snapshot, _ = create_snapshot(
                session, "ours", {"verdict": "any", "where": "current_user <> 'curation_reader'"}, trusted_where=True
            )
            assert snapshot.row_count == 4
        with db.transaction() as session:  # which cannot hold what the transaction wrote before
            ingest_procedural(session, count=1, seed=99)
            with pytest.raises(CurationError, match="create the snapshot in a transaction that has written nothing"):
                create_snapshot(session, "late", {"verdict": "any", "where": "TRUE"})
    finally:
        db.dispose()
