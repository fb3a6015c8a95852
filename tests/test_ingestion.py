"""Ingestion of the real benchmark files in ../shared/data, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from curation.db.session import Database
from curation.errors import ConflictError, CurationError, InputError
from curation.ingestion.formats import ColumnMapping
from curation.ingestion.rows import question_fingerprint
from curation.ingestion.service import ingest_dataset, ingest_files, ingest_procedural
from curation.models import AnswerType, Problem, Split, SplitPurpose, Task


def _count(db: Database, where: str = "1=1") -> int:
    with db.read() as session:
        return int(session.execute(text(f"SELECT COUNT(*) FROM problem WHERE {where}")).scalar_one())


def _split_counts(db: Database, task: str) -> dict[str, int]:
    with db.read() as session:
        rows = session.execute(
            select(Problem.split, func.count())
            .join(Task, Task.id == Problem.task_id)
            .where(Task.name == task)
            .group_by(Problem.split)
        )
        return {split: count for split, count in rows}


def test_gsm8k_train_and_test_then_nothing_new(db: Database, shared_data: Path) -> None:
    files = [shared_data / "gsm8k/train.jsonl", shared_data / "gsm8k/test.jsonl"]
    with db.transaction() as session:
        report = ingest_files(session, "gsm8k", files)
    assert (report.read, report.inserted, report.unchanged) == (8792, 8792, 0)
    assert _split_counts(db, "gsm8k") == {"train": 7473, "test": 1319}
    assert report.eval_overlap_count == 0  # GSM8K's train and test share no question

    with db.transaction() as session:
        again = ingest_files(session, "gsm8k", files)
    assert (again.inserted, again.unchanged) == (0, 8792)
    assert _count(db) == 8792

    with db.read() as session:
        first = session.execute(select(Problem).where(Problem.source_ref == "train:0")).scalar_one()
        purposes = dict(session.execute(select(Split.name, Split.purpose)).all())
    assert first.gold_answer == "72"
    assert first.gold_answer_raw == "72"
    assert first.reference_rationale is not None and "<<" not in first.reference_rationale
    assert first.content_hash == question_fingerprint(first.question)
    assert purposes == {"train": SplitPurpose.train, "test": SplitPurpose.eval}


FTCOT_TASKS = [
    # task, files, split file, (train, test), train problems repeating a test question
    ("svamp", ["svamp/SVAMP.json"], "svamp", (700, 300), 0),
    ("multiarith", ["mawps/MultiArith.json"], "multiarith", (420, 180), 5),
    ("addsub", ["mawps/AddSub.json"], "addsub", (276, 119), 0),
    ("single_eq", ["mawps/SingleEq.json"], "single_eq", (356, 152), 0),
    (
        "commonsense_qa",
        ["commonsenseqa/train_rand_split.jsonl", "commonsenseqa/dev_rand_split.jsonl"],
        "commonsense_qa",
        (9741, 1221),
        0,
    ),
    ("strategy_qa", ["bigbench/strategyqa.json"], "strategy_qa", (1603, 687), 1),
    ("date_understanding", ["bigbench/date_understanding.json"], "date_understanding", (258, 111), 0),
    (
        "tracking_shuffled_objects",
        ["bigbench/tracking_shuffled_objects.json"],
        "tracking_shuffled_objects",
        (525, 225),
        0,
    ),
    ("coin_flip", ["symbolic/coin_flip.json"], "coin_flip", (350, 150), 0),
    ("last_letter_concatenation", ["symbolic/last_letters.json"], "last_letter_concatenation", (350, 150), 0),
]


@pytest.mark.parametrize(
    ("task", "files", "split_file", "sizes", "overlap"), FTCOT_TASKS, ids=[t[0] for t in FTCOT_TASKS]
)
def test_fine_tune_cot_tasks_with_their_splits(
    sqlite_db: Database,
    shared_data: Path,
    task: str,
    files: list[str],
    split_file: str,
    sizes: tuple[int, int],
    overlap: int,
) -> None:
    with sqlite_db.transaction() as session:
        report = ingest_files(
            session,
            task,
            [shared_data / f for f in files],
            ftcot_split=shared_data / f"ftcot/split/{split_file}__default.json",
        )
    assert _split_counts(sqlite_db, task) == {"train": sizes[0], "test": sizes[1]}
    # MultiArith and StrategyQA repeat a few questions, which Fine-tune-CoT's random split put on both sides.
    assert report.eval_overlap_count == overlap


def test_aqua_multiple_choice(sqlite_db: Database, shared_data: Path) -> None:
    with sqlite_db.transaction() as session:
        report = ingest_files(session, "aqua", [shared_data / "aqua/test.json"])
    assert report.inserted == 254
    with sqlite_db.read() as session:
        problem = session.execute(select(Problem).where(Problem.source_ref == "test:0")).scalar_one()
    assert problem.gold_answer in "ABCDE"
    assert problem.choices is not None and [c["label"] for c in problem.choices] == list("ABCDE")
    assert problem.choices[0]["text"] == "5(√3 + 1)"


def test_date_understanding_choices_are_shuffled_deterministically(sqlite_db: Database, shared_data: Path) -> None:
    path = shared_data / "bigbench/date_understanding.json"
    with sqlite_db.transaction() as session:
        ingest_files(session, "date_understanding", [path], split="test")
    with sqlite_db.read() as session:
        golds = session.execute(select(Problem.gold_answer)).scalars().all()
    # The file lists the right option first in 364 of 369 examples; after shuffling it must not.
    assert golds.count("A") < 150
    assert len(set(golds)) >= 5
    with sqlite_db.transaction() as session:  # same order again: nothing conflicts
        assert ingest_files(session, "date_understanding", [path], split="test").unchanged == 369


def test_yes_no_and_text_answers(sqlite_db: Database, shared_data: Path) -> None:
    with sqlite_db.transaction() as session:
        ingest_files(session, "strategy_qa", [shared_data / "bigbench/strategyqa.json"], split="test")
        ingest_files(session, "last_letters", [shared_data / "symbolic/last_letters.json"], split="test")
    with sqlite_db.read() as session:
        answers: dict[str, str] = dict(
            session.execute(
                select(Task.name, func.group_concat(Problem.gold_answer.distinct()))
                .join(Problem, Problem.task_id == Task.id)
                .group_by(Task.name)
            ).all()
        )
    assert set(answers["strategy_qa"].split(",")) == {"yes", "no"}
    with sqlite_db.read() as session:
        letters = session.execute(
            select(Problem.gold_answer).where(Problem.source_ref == "last_letters:0")
        ).scalar_one()
    assert letters == "yajo"


def test_asdiv_keeps_numeric_answers_and_reports_the_rest(sqlite_db: Database, shared_data: Path) -> None:
    with sqlite_db.transaction() as session:
        report = ingest_files(session, "asdiv", [shared_data / "asdiv/dataset/ASDiv.xml"], split="test")
    assert report.read == 2305
    assert report.inserted + sum(report.skipped.values()) == 2305
    assert report.inserted > 2090  # PAL keeps 2096
    assert "nluds-" in report.skip_examples[0]
    with sqlite_db.read() as session:
        assert (
            session.execute(select(Problem.gold_answer).where(Problem.source_ref == "nluds-0001")).scalar_one() == "9"
        )


def test_pal_jsonl(sqlite_db: Database, shared_data: Path) -> None:
    with sqlite_db.transaction() as session:
        ingest_files(
            session,
            "pal-gsm",
            [shared_data / "pal/gsm.jsonl"],
            format="pal",
            answer_type=AnswerType.number,
            split="test",
        )
        ingest_files(
            session,
            "pal-aqua",
            [shared_data / "pal/aqua.jsonl"],
            format="pal",
            answer_type=AnswerType.multiple_choice,
            split="test",
        )
    assert _split_counts(sqlite_db, "pal-gsm") == {"test": 1319}
    with sqlite_db.read() as session:
        aqua = session.execute(
            select(Problem)
            .join(Task, Task.id == Problem.task_id)
            .where(Task.name == "pal-aqua", Problem.source_ref == "aqua:0")
        ).scalar_one()
    assert aqua.gold_answer == "A"
    assert aqua.choices is not None and len(aqua.choices) == 5
    assert "Answer Choices" not in aqua.question


def test_pal_copy_of_gsm8k_test_shares_fingerprints(sqlite_db: Database, shared_data: Path) -> None:
    with sqlite_db.transaction() as session:
        ingest_files(session, "gsm8k", [shared_data / "gsm8k/test.jsonl"])
        report = ingest_files(
            session,
            "pal-gsm",
            [shared_data / "pal/gsm.jsonl"],
            format="pal",
            answer_type=AnswerType.number,
            split="train",
        )
    assert report.eval_overlap_count == 1319  # stored all the same: the ingest only warns
    assert report.eval_overlap_examples[0] == "pal-gsm/train 'gsm:0' has the question of gsm8k/test 'test:0'"
    shared = _count(
        sqlite_db,
        "split = 'train' AND content_hash IN (SELECT content_hash FROM problem WHERE split = 'test')",
    )
    assert shared == 1319


def test_generic_jsonl_and_csv_with_a_mapping(sqlite_db: Database, tmp_path: Path) -> None:
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text(
        "\n".join(json.dumps({"qid": f"q{i}", "q": f"What is {i}+1?", "a": i + 1, "hint": "add"}) for i in range(5))
    )
    csv_path = tmp_path / "mine.csv"
    csv_path.write_text('prompt,solution,options\nPick one,B,"[""x"",""y""]"\n')
    with sqlite_db.transaction() as session:
        report = ingest_files(
            session,
            "mine",
            [jsonl],
            answer_type=AnswerType.number,
            split="train",
            mapping=ColumnMapping(question="q", answer="a", id="qid"),
        )
        assert report.inserted == 5
        with pytest.raises(InputError, match=r"mine\.csv:2: cannot read choices"):
            ingest_files(
                session,
                "mine-mc",
                [csv_path],
                answer_type=AnswerType.multiple_choice,
                split="test",
                mapping=ColumnMapping(question="prompt", answer="solution", choices="options"),
            )
    with sqlite_db.read() as session:
        problem = session.execute(select(Problem).where(Problem.source_ref == "q3")).scalar_one()
    assert (problem.gold_answer, problem.meta) == ("4", {"hint": "add"})


def test_hub_rows_through_datasets(sqlite_db: Database, shared_data: Path) -> None:
    """The hub path takes a datasets.Dataset; here one built from the local GSM8K file."""
    import datasets

    dataset = datasets.load_dataset("json", data_files=str(shared_data / "gsm8k/test.jsonl"), split="train")
    with sqlite_db.transaction() as session:
        report = ingest_dataset(session, "gsm8k", dataset, source_name="hf://openai/gsm8k/main/test", split="test")
    assert report.inserted == 1319
    with sqlite_db.transaction() as session:  # the same rows as the file: source refs agree
        assert ingest_files(session, "gsm8k", [shared_data / "gsm8k/test.jsonl"]).unchanged == 1319


def test_malformed_line_names_file_and_line_and_changes_nothing(
    db: Database, tmp_path: Path, shared_data: Path
) -> None:
    lines = (shared_data / "gsm8k/test.jsonl").read_text().splitlines()[:50]
    lines[36] = lines[36][:40]  # truncated JSON on line 37
    path = tmp_path / "test.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with db.transaction() as session:
        ingest_procedural(session, count=3, seed=1)
    before = _count(db)
    with pytest.raises(InputError) as raised, db.transaction() as session:
        ingest_files(session, "gsm8k", [path])
    assert str(raised.value).startswith(f"{path}:37: malformed JSON")
    assert _count(db) == before
    with db.read() as session:
        assert session.execute(select(Task.name)).scalars().all() == ["procedural"]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"question": "", "answer": "x\n#### 3"}, "the question is empty"),
        ({"question": "How many?", "answer": "no marker"}, '"#### <number>"'),
        ({"question": "How many?", "answer": "#### many"}, "'many' is not a number"),
        ({"question": "x" * 60_000, "answer": "#### 1"}, "the limit is 50,000"),
        ({"answer": "#### 1"}, 'missing field "question"'),
        ({"question": 5, "answer": "#### 1"}, "should be text"),
    ],
)
def test_bad_records_are_refused_with_their_line(
    sqlite_db: Database, tmp_path: Path, record: dict[str, object], message: str
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"question": "ok?", "answer": "#### 1"}) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(InputError, match=":2: ") as raised, sqlite_db.transaction() as session:
        ingest_files(session, "gsm8k", [path])
    assert message in str(raised.value)
    assert _count(sqlite_db) == 0


def test_changed_gold_answer_is_a_conflict(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"question": "What is 2+2?", "answer": "#### 4"}) + "\n")
    with db.transaction() as session:
        ingest_files(session, "gsm8k", [path])
    path.write_text(json.dumps({"question": "What is 2+2?", "answer": "#### 5"}) + "\n")
    with (
        pytest.raises(
            ConflictError,
            match=r"train\.jsonl:1: gsm8k/train 'train:0' is stored as problem #\d+ with a different gold answer",
        ),
        db.transaction() as session,
    ):
        ingest_files(session, "gsm8k", [path])


def test_unknown_task_and_missing_split_are_explained(sqlite_db: Database, shared_data: Path) -> None:
    with pytest.raises(CurationError, match="unknown task 'nope'"), sqlite_db.transaction() as session:
        ingest_files(session, "nope", [shared_data / "gsm8k/test.jsonl"])
    with pytest.raises(CurationError, match="cannot tell which split"), sqlite_db.transaction() as session:
        ingest_files(session, "svamp", [shared_data / "svamp/SVAMP.json"])
    with pytest.raises(CurationError, match="pass every file"), sqlite_db.transaction() as session:
        ingest_files(
            session,
            "aqua",
            [shared_data / "aqua/test.json"],
            ftcot_split=shared_data / "ftcot/split/aqua__default.json",
        )
    assert _count(sqlite_db) == 0


def test_split_purpose_cannot_change(sqlite_db: Database, shared_data: Path) -> None:
    with sqlite_db.transaction() as session:
        ingest_files(session, "coin_flip", [shared_data / "symbolic/coin_flip.json"], split="holdout")
    with pytest.raises(ConflictError, match="stored as eval"), sqlite_db.transaction() as session:
        ingest_files(
            session,
            "coin_flip",
            [shared_data / "symbolic/coin_flip.json"],
            split="holdout",
            purpose=SplitPurpose.train,
        )
