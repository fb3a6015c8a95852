"""Records that cannot be stored, split names from file names, and train/eval question overlap.

Bad records are refused on both databases with their file and line named and nothing written:
PostgreSQL refuses what SQLite would quietly keep (NUL characters, over-long keys), and the two
must agree.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from curation.db.session import Database
from curation.errors import CurationError, InputError
from curation.ingestion.formats import ColumnMapping
from curation.ingestion.rows import MAX_SOURCE_REF_CHARS
from curation.ingestion.service import IngestReport, ingest_dataset, ingest_files, ingest_procedural
from curation.ingestion.splits import MAX_SPLIT_NAME_CHARS, natural_split
from curation.ingestion.tasks import MAX_TASK_NAME_CHARS
from curation.models import AnswerType, Problem, Split, Task
from tests.conftest import ROOT

N, MC, TEXT = AnswerType.number, AnswerType.multiple_choice, AnswerType.text
MAPPED = ColumnMapping(question="q", answer="a", id="qid")
MAPPED_MC = ColumnMapping(question="q", answer="a", choices="opts")


def _count(db: Database) -> int:
    with db.read() as session:
        return int(session.execute(select(func.count()).select_from(Problem)).scalar_one())


def _task_names(db: Database) -> list[str]:
    with db.read() as session:
        return list(session.execute(select(Task.name).order_by(Task.name)).scalars())


def test_limits_are_the_columns_widths() -> None:
    assert Problem.__table__.c.source_ref.type.length == MAX_SOURCE_REF_CHARS  # type: ignore[attr-defined]
    assert Split.__table__.c.name.type.length == MAX_SPLIT_NAME_CHARS  # type: ignore[attr-defined]
    assert Problem.__table__.c.split.type.length == MAX_SPLIT_NAME_CHARS  # type: ignore[attr-defined]
    assert Task.__table__.c.name.type.length == MAX_TASK_NAME_CHARS  # type: ignore[attr-defined]


GOOD = {"qid": "q0", "q": "What is 1 + 1?", "a": 2, "opts": ["A) 2", "B) 3"]}

# (id, second record as a JSON line, ingest options, message); the first record is GOOD.
BAD_RECORDS: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "long-source-ref",
        json.dumps({"qid": "x" * 256, "q": "Q?", "a": 1}),
        {"mapping": MAPPED},
        "is 256 characters; 1 to 255 fit",
    ),
    ("nul-in-question", json.dumps({"qid": "q1", "q": "What\x00 is it?", "a": 1}), {}, "cannot store the question"),
    ("nul-in-id", json.dumps({"qid": "q\x001", "q": "Q?", "a": 1}), {}, "cannot store the record's id"),
    (
        "nul-in-text-answer",
        json.dumps({"qid": "q1", "q": "Q?", "a": "ab\x00c"}),
        {"answer_type": TEXT},
        "cannot store the gold answer: it holds a NUL character (at position 2)",
    ),
    (
        "nul-in-choices",
        json.dumps({"q": "Q?", "a": "A", "opts": ["A) x\x00", "B) y"]}),
        {"answer_type": MC, "mapping": MAPPED_MC, "good": {"a": "A"}},
        "cannot store the choices: it holds a NUL character",
    ),
    (
        "nul-in-meta",
        json.dumps({"qid": "q1", "q": "Q?", "a": 1, "note": ["x", {"y": "z\x00"}]}),
        {},
        "cannot store the extra fields (meta): it holds a NUL character",
    ),
    (
        "nul-in-meta-key",
        json.dumps({"qid": "q1", "q": "Q?", "a": 1, "no\x00te": "x"}),
        {},
        "cannot store the extra fields (meta)",
    ),
    (
        "lone-surrogate",
        json.dumps({"qid": "q1", "q": "Q\ud800?", "a": 1}),
        {},
        "cannot store the question: it is not valid Unicode (a lone surrogate at position 1)",
    ),
    (
        "meta-int-beyond-64-bits",
        json.dumps({"qid": "q1", "q": "Q?", "a": 1, "big": 2**70}),
        {},
        "not storable as JSON (Integer exceeds 64-bit range)",
    ),
    ("gold-dict", json.dumps({"qid": "q1", "q": "Q?", "a": {"value": 1}}), {}, "found dict"),
    ("gold-list", json.dumps({"qid": "q1", "q": "Q?", "a": [1]}), {}, "found list"),
    ("gold-bool-for-number", json.dumps({"qid": "q1", "q": "Q?", "a": True}), {}, "a boolean (true) is not a number"),
    (
        "gold-bool-for-text",
        json.dumps({"qid": "q1", "q": "Q?", "a": False}),
        {"answer_type": TEXT},
        "a boolean (false) is not a text answer",
    ),
    ("gold-infinite", '{"qid": "q1", "q": "Q?", "a": 1e999}', {}, "inf is not a finite number"),
    ("gold-nan", '{"qid": "q1", "q": "Q?", "a": NaN}', {}, "nan is not a finite number"),
    ("gold-out-of-range", json.dumps({"qid": "q1", "q": "Q?", "a": "1e999999999"}), {}, "out of range"),
    ("gold-3000-digits", '{"qid": "q1", "q": "Q?", "a": ' + "9" * 3000 + "}", {}, "more than 2,000 digits"),
    ("int-of-5000-digits", '{"qid": "q1", "q": "Q?", "a": ' + "9" * 5000 + "}", {}, "unreadable JSON"),
    (
        "nesting-too-deep",
        '{"qid": "q1", "q": "Q?", "a": ' + "[" * 100_000 + "]" * 100_000 + "}",
        {},
        "unreadable JSON",
    ),
    ("id-of-wrong-type", json.dumps({"qid": {"x": 1}, "q": "Q?", "a": 1}), {}, 'field "qid" should be an id'),
]


@pytest.mark.parametrize(("line", "options", "message"), [c[1:] for c in BAD_RECORDS], ids=[c[0] for c in BAD_RECORDS])
def test_bad_record_is_refused_with_its_line_and_nothing_is_written(
    db: Database, tmp_path: Path, line: str, options: dict[str, Any], message: str
) -> None:
    with db.transaction() as session:
        ingest_procedural(session, count=3, seed=1)
    path = tmp_path / "mine.jsonl"
    options = dict(options)  # the parameter is shared by both databases' runs
    good = {**GOOD, **options.pop("good", {})}
    path.write_text(json.dumps(good) + "\n" + line + "\n")
    kwargs: dict[str, Any] = {"answer_type": N, "split": "train", "mapping": MAPPED, **options}
    with pytest.raises(InputError) as raised, db.transaction() as session:
        ingest_files(session, "mine", [path], **kwargs)
    assert str(raised.value).startswith(f"{path}:2")
    assert message in str(raised.value)
    assert len(str(raised.value)) < 500  # no record quoted whole
    assert _count(db) == 3
    assert _task_names(db) == ["procedural"]


@pytest.mark.parametrize(
    ("split", "message"),
    [("s" * 101, "is 101 characters; 1 to 100 fit"), ("a\x00b", "cannot store the split name")],
    ids=["long", "nul"],
)
def test_bad_split_name_is_refused(db: Database, tmp_path: Path, split: str, message: str) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(GOOD) + "\n")
    with pytest.raises(InputError, match=f"^{re.escape(str(path))}:1") as raised, db.transaction() as session:
        ingest_files(session, "mine", [path], answer_type=N, split=split, mapping=MAPPED)
    assert message in str(raised.value)
    assert _task_names(db) == []


def test_bad_split_name_in_a_fine_tune_cot_split_file(sqlite_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(GOOD) + "\n")
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({"t" * 101: [0]}))
    with (
        pytest.raises(InputError, match=f"^{re.escape(str(split_file))}: split name"),
        sqlite_db.transaction() as session,
    ):
        ingest_files(session, "mine", [path], answer_type=N, ftcot_split=split_file, mapping=MAPPED)


@pytest.mark.parametrize("name", ["", "t" * 101, "a\x00b"], ids=["empty", "long", "nul"])
def test_bad_task_name_is_refused(sqlite_db: Database, tmp_path: Path, name: str) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(GOOD) + "\n")
    with pytest.raises(CurationError, match="a task name is 1 to 100 characters"), sqlite_db.transaction() as session:
        ingest_files(session, name, [path], answer_type=N, mapping=MAPPED)
    with pytest.raises(CurationError, match="a task name is 1 to 100 characters"), sqlite_db.transaction() as session:
        ingest_procedural(session, count=1, task=name)


def test_bad_record_after_a_stored_batch_rolls_everything_back(db: Database, tmp_path: Path) -> None:
    """Record 2,501 is bad: the first batch of 2,000 was already inserted in the transaction."""
    path = tmp_path / "train.jsonl"
    lines = [json.dumps({"q": f"What is {i} + 1?", "a": i + 1}) for i in range(2500)]
    lines.append(json.dumps({"q": "What is\x00 it?", "a": 1}))
    path.write_text("\n".join(lines) + "\n")
    with (
        pytest.raises(InputError, match=f"^{re.escape(str(path))}:2501: cannot store the question"),
        db.transaction() as session,
    ):
        ingest_files(session, "mine", [path], answer_type=N, mapping=ColumnMapping(question="q", answer="a"))
    assert _count(db) == 0
    assert _task_names(db) == []


def test_unexpected_error_in_a_parser_names_the_record(db: Database, tmp_path: Path) -> None:
    """AQuA's parser calls .strip() on the rationale: a list there raised a bare AttributeError."""
    path = tmp_path / "train.jsonl"
    good = {"question": "Q?", "options": ["A)1", "B)2"], "rationale": "r", "correct": "A"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "rationale": ["not", "text"]}) + "\n")
    with pytest.raises(InputError) as raised, db.transaction() as session:
        ingest_files(session, "aqua", [path])
    assert str(raised.value).startswith(f"{path}:2: cannot read the record: AttributeError")
    assert _count(db) == 0


def test_dataset_rows_that_are_not_records(sqlite_db: Database) -> None:
    rows: list[Any] = [{"question": "Q?", "answer": "#### 1"}, ["not", "a", "record"]]
    with pytest.raises(InputError, match=r"^hf://x record 1: expected a record"), sqlite_db.transaction() as session:
        ingest_dataset(session, "gsm8k", rows, source_name="hf://x", split="train")
    assert _count(sqlite_db) == 0


def test_skipping_other_answer_types_skips_wrong_gold_types_too(sqlite_db: Database, tmp_path: Path) -> None:
    """ASDiv-like tasks skip gold answers that are not numbers; a dict is not a number either."""
    path = tmp_path / "test.jsonl"
    answers: list[object] = ["3 (apples)", "They are equal", {"value": 3}]
    path.write_text("".join(json.dumps({"Question": f"Q{i}?", "Answer": a}) + "\n" for i, a in enumerate(answers)))
    with sqlite_db.transaction() as session:
        report = ingest_files(session, "asdiv", [path], format="jsonl", mapping=ColumnMapping("Question", "Answer"))
    assert (report.inserted, sum(report.skipped.values())) == (1, 2)
    assert "found dict" in report.skip_examples[1]


# --- Split names from file names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("train.jsonl", "train"),
        ("test.jsonl", "test"),
        ("dev.jsonl", "dev"),
        ("validation.parquet", "validation"),
        ("val.json", "validation"),
        ("valid.json", "validation"),
        ("dev_rand_split.jsonl", "dev"),
        ("train_rand_split.jsonl", "train"),
        ("gsm8k-train.jsonl", "train"),
        ("GSM8K_Test.jsonl", "test"),
        ("svamp.test.json", None),  # only the part before the first dot counts
        ("contest.jsonl", None),
        ("devious.jsonl", None),
        ("trainee_eval.jsonl", None),
        ("interval.jsonl", None),
        ("latest.jsonl", None),
        ("train_test.jsonl", None),  # two splits named: the user must say which
        ("SVAMP.json", None),
    ],
)
def test_natural_split_matches_whole_words(name: str, split: str | None) -> None:
    assert natural_split(Path("/data") / name) == split


# --- Train problems that repeat an evaluation question ------------------------------------------------


def _gsm8k(path: Path, questions: list[str]) -> Path:
    path.write_text(
        "".join(json.dumps({"question": q, "answer": f"#### {i}"}) + "\n" for i, q in enumerate(questions))
    )
    return path


def test_train_question_repeating_a_test_question_in_the_same_ingest(db: Database, tmp_path: Path) -> None:
    train = _gsm8k(tmp_path / "train.jsonl", ["How many apples?", "How  many PEARS?", "How many plums?"])
    test = _gsm8k(tmp_path / "test.jsonl", ["How many pears?", "How many figs?"])
    with db.transaction() as session:
        report = ingest_files(session, "gsm8k", [train, test])
    assert report.inserted == 5  # a warning only: everything is stored
    assert report.eval_overlap_count == 1
    assert report.eval_overlap_examples == ["gsm8k/train 'train:1' has the question of gsm8k/test 'test:0'"]
    with db.transaction() as session:  # re-ingesting warns again
        assert ingest_files(session, "gsm8k", [train, test]).eval_overlap_count == 1


def test_overlap_is_found_from_either_side_across_ingests_and_tasks(db: Database, tmp_path: Path) -> None:
    train = _gsm8k(tmp_path / "train.jsonl", ["Q one?", "Q two?", "Q three?"])
    with db.transaction() as session:
        assert ingest_files(session, "gsm8k", [train]).eval_overlap_count == 0
    # Evaluation problems arriving later, under another task, name the stored train problems.
    held_out = tmp_path / "held.jsonl"
    held_out.write_text(
        json.dumps({"input": "Q two?", "target": 1}) + "\n" + json.dumps({"input": "Q 4?", "target": 2})
    )
    with db.transaction() as session:
        report = ingest_files(session, "pal-gsm", [held_out], format="pal", answer_type=N, split="test")
    assert report.eval_overlap_count == 1
    assert report.eval_overlap_examples == ["gsm8k/train 'train:1' has the question of pal-gsm/test 'held:0'"]
    # And train problems arriving later find the stored evaluation ones.
    more = _gsm8k(tmp_path / "more.jsonl", ["Q 4?", "Q five?"])
    with db.transaction() as session:
        report = ingest_files(session, "extra", [more], format="gsm8k", answer_type=N, split="train")
    assert report.eval_overlap_examples == ["extra/train 'more:0' has the question of pal-gsm/test 'held:1'"]
    # Two train splits sharing questions are no concern.
    copy = _gsm8k(tmp_path / "train_copy.jsonl", ["Q one?", "Q three?"])
    with db.transaction() as session:
        assert ingest_files(session, "copy", [copy], format="gsm8k", answer_type=N).eval_overlap_count == 0


@pytest.mark.parametrize("test_first", [False, True], ids=["train-first", "test-first"])
def test_overlap_across_batches(db: Database, tmp_path: Path, test_first: bool) -> None:
    """The two sides of a pair in different batches of 2,000: the later one finds the earlier."""
    questions = [f"What is {i} times 3?" for i in range(2500)]
    train = _gsm8k(tmp_path / "train.jsonl", questions)
    test = _gsm8k(tmp_path / "test.jsonl", [questions[10] if not test_first else questions[2400], "Other?"])
    with db.transaction() as session:
        report = ingest_files(session, "gsm8k", [test, train] if test_first else [train, test])
    assert report.eval_overlap_count == 1


def test_cli_prints_the_overlap_warning(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    train = _gsm8k(tmp_path / "train.jsonl", ["How many apples?", "How many pears?"])
    test = _gsm8k(tmp_path / "test.jsonl", ["How many pears?"])

    def curation(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", "from curation.cli.app import main; main()", *args],
            capture_output=True, text=True, cwd=ROOT, env={"CURATION_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return " ".join(result.stdout.split())

    curation("db", "upgrade")
    out = curation("ingest", "gsm8k", str(train), str(test))
    assert "new 3" in out
    assert "warning: 1 train-split problems have the question of an evaluation problem" in out
    assert "e.g. gsm8k/train 'train:1' has the question of gsm8k/test 'test:0'" in out


def test_report_counts_each_train_problem_once() -> None:
    report = IngestReport(task="t")
    for evaluation in (("e", "test", "1"), ("e", "test", "2"), ("f", "dev", "1")):
        report.overlap(("t", "train", "a"), evaluation)
    report.overlap(("t", "train", "b"), ("e", "test", "1"))
    assert report.eval_overlap_count == 2
    assert len(report.eval_overlap_examples) == 2
