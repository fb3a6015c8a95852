"""Importing the Program-of-Thoughts GSM8K programs (real Codex outputs) as a synthesis run."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from curation.db.session import Database
from curation.errors import InputError, NotFoundError
from curation.ingestion.formats import ColumnMapping
from curation.ingestion.service import ingest_files
from curation.models import (
    AnswerType,
    Generation,
    Label,
    Problem,
    PromptTemplate,
    Rationale,
    RunStatus,
    SynthesisRun,
    TemplateStyle,
    Verdict,
)
from curation.teacher_outputs import ImportReport, OutputFields, import_teacher_outputs

POT = "teacher_outputs/program_of_thoughts/gsm8K_s0_e-1_11_17_10_20.jsonl"


@pytest.fixture
def gsm8k_test(db: Database, shared_data: Path) -> Database:
    with db.transaction() as session:
        ingest_files(session, "gsm8k", [shared_data / "gsm8k/test.jsonl"])
    return db


def test_program_of_thoughts_import(gsm8k_test: Database, shared_data: Path) -> None:
    db = gsm8k_test
    with db.transaction() as session:
        report = import_teacher_outputs(
            session,
            shared_data / POT,
            task="gsm8k",
            split="test",
            teacher="code-davinci-002",
            style=TemplateStyle.program,
        )
    assert (report.records, report.problems, report.generations, report.new_generations) == (
        1318,
        1318,
        1318,
        1318,
    )
    with db.read() as session:
        run = session.get(SynthesisRun, report.run_id)
        assert run is not None and run.status is RunStatus.completed and run.problems_total == 1318
        template = session.get(PromptTemplate, run.template_id)
        assert template is not None and template.style is TemplateStyle.program
        assert template.text.lstrip().startswith("Question: Janet")  # the file's own few-shot prompt
        first = session.execute(select(Generation).order_by(Generation.id).limit(1)).scalar_one()
        assert first.output is not None and first.output.startswith("total_eggs = 16")
        assert first.meta == {"answer": 18.0, "executed": 18.0}

    with db.transaction() as session:
        again = import_teacher_outputs(
            session,
            shared_data / POT,
            task="gsm8k",
            split="test",
            teacher="code-davinci-002",
            style=TemplateStyle.program,
        )
    assert (again.run_id, again.created_run, again.new_generations) == (report.run_id, False, 0)
    with db.read() as session:
        assert session.execute(select(func.count(Generation.id))).scalar_one() == 1318
        assert session.execute(select(func.count(SynthesisRun.id))).scalar_one() == 1


def test_lists_of_outputs_become_samples_and_refs_match_by_source_ref(gsm8k_test: Database, tmp_path: Path) -> None:
    path = tmp_path / "outputs.jsonl"
    path.write_text(
        json.dumps({"ref": "test:0", "outputs": ["a", "b", "c"], "cost": 1})
        + "\n"
        + json.dumps({"ref": "test:1", "outputs": "d"})
        + "\n"
        + json.dumps({"ref": "test:0", "outputs": ["e"]})
        + "\n"
    )
    with gsm8k_test.transaction() as session:
        report = import_teacher_outputs(
            session,
            path,
            task="gsm8k",
            teacher="t",
            style=TemplateStyle.zero_shot_cot,
            fields=OutputFields(output="outputs", problem_ref="ref"),
        )
    assert (report.problems, report.generations) == (2, 5)
    with gsm8k_test.read() as session:
        samples = session.execute(
            select(Generation.output, Generation.sample_index).order_by(Generation.problem_id, Generation.sample_index)
        ).all()
    assert [tuple(s) for s in samples] == [("a", 0), ("b", 1), ("c", 2), ("e", 3), ("d", 0)]


def test_unmatched_and_malformed_records_name_their_line(gsm8k_test: Database, tmp_path: Path) -> None:
    path = tmp_path / "outputs.jsonl"
    path.write_text(json.dumps({"question": "Not a GSM8K question at all?", "generated": "x"}) + "\n")
    with (
        pytest.raises(InputError, match=r"outputs\.jsonl:1: no stored problem matches"),
        gsm8k_test.transaction() as s,
    ):
        import_teacher_outputs(s, path, task="gsm8k", teacher="t", style=TemplateStyle.program)
    # Skipping the unmatched records of a file that matches nothing leaves nothing: an error, not an empty run.
    with (
        pytest.raises(InputError, match=r"outputs\.jsonl: nothing to import: none of its 1 records matches"),
        gsm8k_test.transaction() as s,
    ):
        import_teacher_outputs(s, path, task="gsm8k", teacher="t", style=TemplateStyle.program, skip_unmatched=True)

    path.write_text('{"question": "x", "generated": 5}\n{"question": ')
    with pytest.raises(InputError, match=r"outputs\.jsonl:2: malformed JSON"), gsm8k_test.transaction() as s:
        import_teacher_outputs(s, path, task="gsm8k", teacher="t2", style=TemplateStyle.program)
    with pytest.raises(NotFoundError, match="ingest it before"), gsm8k_test.transaction() as s:
        import_teacher_outputs(s, path, task="svamp", teacher="t", style=TemplateStyle.program)
    with gsm8k_test.read() as session:
        # the failed imports left nothing behind
        assert session.execute(select(func.count(SynthesisRun.id))).scalar_one() == 0


# --- Matching questions: copies, verbalised choices, the options the teacher saw ------------------------


def _write(path: Path, records: Sequence[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _imported(db: Database, run_id: int) -> list[tuple[str, str, int, list[str] | None]]:
    with db.read() as session:
        rows = session.execute(
            select(Problem.split, Problem.source_ref, Generation.sample_index, Generation.choice_order)
            .join(Problem, Problem.id == Generation.problem_id)
            .where(Generation.synthesis_run_id == run_id)
            .order_by(Generation.id)
        ).all()
    return [tuple(r) for r in rows]


def test_copies_of_a_question_take_its_records_in_turn(db: Database, shared_data: Path, tmp_path: Path) -> None:
    """MultiArith stores the question of #40 (test) again as #50 (train): same gold, no choices."""
    with db.transaction() as session:
        ingest_files(session, "multiarith", [shared_data / "mawps/MultiArith.json"],
                     ftcot_split=shared_data / "ftcot/split/multiarith__default.json")  # fmt: skip
    questions = json.loads((shared_data / "mawps/MultiArith.json").read_text())
    copy, single = questions[40]["sQuestion"], questions[0]["sQuestion"]
    path = _write(tmp_path / "outputs.jsonl", [{"question": q, "generated": f"The answer is {i}."}
                                               for i, q in enumerate([copy, single, copy, copy])])  # fmt: skip
    with db.transaction() as session:
        report = import_teacher_outputs(
            session, path, task="multiarith", teacher="t", style=TemplateStyle.few_shot_cot
        )
    assert (report.generations, report.onto_copies) == (4, 3)
    # The n-th record of the question onto the n-th copy (in id order), wrapping around.
    assert _imported(db, report.run_id) == [("test", "40", 0, None), ("train", "0", 0, None),
                                            ("train", "50", 0, None), ("test", "40", 1, None)]  # fmt: skip
    again = import_teacher_outputs_again(db, path)
    assert again.new_generations == 0  # and the same file again lands on the same keys: nothing new
    with db.transaction() as session:
        only_train = import_teacher_outputs(
            session, path, task="multiarith", teacher="t2", style=TemplateStyle.few_shot_cot, split="train"
        )
    assert [ref for _, ref, _, _ in _imported(db, only_train.run_id)] == ["50", "0", "50", "50"]


def import_teacher_outputs_again(db: Database, path: Path) -> ImportReport:
    with db.transaction() as session:
        return import_teacher_outputs(session, path, task="multiarith", teacher="t", style=TemplateStyle.few_shot_cot)


@pytest.fixture
def conflicting(db: Database, tmp_path: Path) -> Database:
    """A user task whose question "q1" is stored in train (gold 5) and in test (gold 7), under one id."""
    mapping = ColumnMapping(id="id")
    train = _write(tmp_path / "train.jsonl", [{"id": "q1", "question": "How many legs do 2 birds have?", "answer": 5}])
    test = _write(tmp_path / "test.jsonl", [{"id": "q1", "question": "How many legs do 2 birds have?", "answer": 7}])
    with db.transaction() as session:
        ingest_files(session, "mine", [train, test], answer_type=AnswerType.number, mapping=mapping)
    return db


def test_copies_whose_golds_differ_are_an_error_with_a_hint_for_the_flags_given(
    conflicting: Database, tmp_path: Path
) -> None:
    db = conflicting
    by_question = _write(
        tmp_path / "by_question.jsonl", [{"question": "How many legs do 2 birds have?", "generated": "4"}]
    )
    with (
        pytest.raises(
            InputError, match=r"by_question\.jsonl:1: the question matches 2 stored problems that differ"
        ) as error,
        db.transaction() as session,
    ):
        import_teacher_outputs(session, by_question, task="mine", teacher="t", style=TemplateStyle.few_shot_cot)
    assert "pass --split" in str(error.value) and "(train, gold 5)" in str(error.value)
    with db.transaction() as session:  # --split picks one of them: no ambiguity left
        report = import_teacher_outputs(
            session, by_question, task="mine", teacher="t", style=TemplateStyle.few_shot_cot, split="test"
        )
    assert report.generations == 1

    by_ref = _write(tmp_path / "by_ref.jsonl", [{"ref": "q1", "generated": "4"}])
    hint = r"by_ref\.jsonl:1: .* pass --split to say which split the reference means"
    with pytest.raises(InputError, match=hint), db.transaction() as session:
        import_teacher_outputs(
            session, by_ref, task="mine", teacher="t", style=TemplateStyle.few_shot_cot,
            fields=OutputFields(problem_ref="ref"),
        )  # fmt: skip


def test_within_one_split_the_hint_is_a_reference_field(db: Database, shared_data: Path, tmp_path: Path) -> None:
    """CommonsenseQA's train split holds "Where do you throw garbage?" twice, with other choices and golds."""
    with db.transaction() as session:
        ingest_files(session, "commonsense_qa", [shared_data / "commonsenseqa/train_rand_split.jsonl"])
    stem_only = _write(tmp_path / "stem.jsonl", [{"question": "Where do you throw garbage?", "generated": "C"}])
    with pytest.raises(InputError, match="differ") as error, db.transaction() as session:
        import_teacher_outputs(
            session, stem_only, task="commonsense_qa", teacher="t", style=TemplateStyle.zero_shot_cot, split="train"
        )
    assert "--split" not in str(error.value) and "--ref-field" in str(error.value)
    # With the options it saw, each record finds its own problem.
    records = [
        {"question": "Where do you throw garbage? Answer Choices: (A) toronto (B) floor (C) trashcan (D) television "
         "(E) in your neighbours yard", "generated": "Therefore, among A through E, the answer is C."},
        {"question": "where do you throw garbage? Answer Choices: (A) outside (B) television (C) ground (D) landfill "
         "(E) trashcan", "generated": "Therefore, among A through E, the answer is E."},
    ]  # fmt: skip
    with db.transaction() as session:
        report = import_teacher_outputs(session, _write(tmp_path / "both.jsonl", records), task="commonsense_qa",
                                        teacher="t", style=TemplateStyle.zero_shot_cot)  # fmt: skip
    assert [ref for _, ref, _, _ in _imported(db, report.run_id)] == [
        "6b7d9e7fdde60218290b8d1545440bd6", "fb75a804425554082c13f9af97e50f5b"
    ]  # fmt: skip


@pytest.fixture
def dates(db: Database, shared_data: Path) -> Database:
    with db.transaction() as session:
        ingest_files(session, "date_understanding", [shared_data / "bigbench/date_understanding.json"],
                     ftcot_split=shared_data / "ftcot/split/date_understanding__default.json")  # fmt: skip
    return db


def test_fine_tune_cot_verbalisation_records_the_order_the_teacher_saw(dates: Database, tmp_path: Path) -> None:
    """The teacher saw BIG-bench's order (the right option first); we store our shuffle of it."""
    db = dates
    question = (
        "Yesterday was April 30, 2021. What is the date today in MM/DD/YYYY? Which choice is true? Answer choices: "
        "(A) 05/01/2021, (B) 02/23/2021, (C) 03/11/2021, (D) 05/09/2021, (E) 06/12/2021, (F) 04/29/2021."
    )
    records = [
        {
            "question": question,
            "gold": "A",
            "generated": "Today is 05/01/2021.\nTherefore, among A through F, the answer is A.",
        },
        {
            "question": question,
            "gold": "A",
            "generated": "Today is 04/29/2021.\nTherefore, among A through F, the answer is F.",
        },
    ]
    with db.transaction() as session:
        report = import_teacher_outputs(
            session, _write(tmp_path / "ftcot.jsonl", records), task="date_understanding", teacher="t",
            style=TemplateStyle.zero_shot_cot, fields=OutputFields(gold="gold"),
        )  # fmt: skip
    assert (report.generations, report.choices_assumed, report.gold_disagreements) == (2, 0, 0)
    with db.read() as session:
        stored = session.execute(
            select(Problem.choices, Problem.gold_answer).where(Problem.source_ref == "date_understanding:0")
        ).one()
    text_of = {c["label"]: c["text"] for c in stored.choices}
    order = _imported(db, report.run_id)[0][3]
    assert order is not None and [text_of[label] for label in order] == [
        "05/01/2021", "02/23/2021", "03/11/2021", "05/09/2021", "06/12/2021", "04/29/2021"
    ]  # fmt: skip
    verify_cot(db)
    with db.read() as session:
        labels = session.execute(select(Rationale.answer, Label.verdict).join(Label).order_by(Rationale.id)).all()
    assert [tuple(row) for row in labels] == [(stored.gold_answer, Verdict.correct), (order[5], Verdict.incorrect)]


def verify_cot(db: Database) -> None:
    from workers.sandbox import Sandbox
    from workers.verification import verify

    with Sandbox() as sandbox:
        verify(db, sandbox)


def test_a_choices_field_says_which_options_the_teacher_saw(dates: Database, tmp_path: Path) -> None:
    db = dates
    question = "Yesterday was April 30, 2021. What is the date today in MM/DD/YYYY?"
    seen = ["05/01/2021", "02/23/2021", "03/11/2021", "05/09/2021", "06/12/2021", "04/29/2021"]
    other = ["04/29/2021", "05/01/2021", "02/23/2021", "03/11/2021", "05/09/2021", "06/12/2021"]
    as_mapping = dict(reversed(list(zip("ABCDEF", other, strict=True))))  # F first: labels, not places, count
    records: list[dict[str, Any]] = [
        {"question": question, "options": seen, "generated": "So the answer is (A)."},
        {"question": question, "options": as_mapping, "generated": "So the answer is (B)."},
        {"question": question, "generated": "So the answer is (F)."},
    ]
    with db.transaction() as session:
        report = import_teacher_outputs(
            session, _write(tmp_path / "fielded.jsonl", records), task="date_understanding", teacher="t",
            style=TemplateStyle.zero_shot_cot, fields=OutputFields(choices="options"),
        )  # fmt: skip
    assert (report.generations, report.choices_assumed) == (3, 1)  # the third did not say: stored order
    orders = [order for *_, order in _imported(db, report.run_id)]
    assert orders[0] is not None and orders[1] is not None and orders[2] is None
    verify_cot(db)
    with db.read() as session:
        verdicts = session.execute(select(Label.verdict).order_by(Label.id)).scalars().all()
    assert verdicts == [Verdict.correct, Verdict.correct, Verdict.correct]  # stored F is 05/01/2021 too

    wrong = _write(
        tmp_path / "wrong.jsonl", [{"question": question, "options": ["01/01/2000", "02/02/2000"], "generated": "A"}]
    )
    not_stored = r"wrong\.jsonl:1: the options shown \(\(A\) 01/01/2000 \(B\) 02/02/2000\) are not"
    with pytest.raises(InputError, match=not_stored), db.transaction() as session:
        import_teacher_outputs(
            session, wrong, task="date_understanding", teacher="t", style=TemplateStyle.zero_shot_cot,
            fields=OutputFields(choices="options"),
        )  # fmt: skip


def test_a_reported_gold_that_disagrees_is_counted(gsm8k_test: Database, tmp_path: Path) -> None:
    records = [{"ref": "test:0", "generated": "The answer is 18.", "gold": "18"},
               {"ref": "test:1", "generated": "The answer is 3.", "gold": "4"}]  # fmt: skip
    with gsm8k_test.transaction() as session:
        report = import_teacher_outputs(
            session, _write(tmp_path / "golds.jsonl", records), task="gsm8k", teacher="t",
            style=TemplateStyle.few_shot_cot, fields=OutputFields(problem_ref="ref", gold="gold"),
        )  # fmt: skip
    assert report.gold_disagreements == 1
    [example] = report.gold_disagreement_examples
    assert example.startswith(f"{tmp_path / 'golds.jsonl'}:2: reports '4', problem #") and example.endswith("has '3'")
