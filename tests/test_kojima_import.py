"""Zero-shot-CoT outputs in Kojima et al.'s published format, for all 12 Fine-tune-CoT tasks.

tests/data/kojima/<dataset>_zero_shot_cot.log are small logs in their repository's layout
(log/*_zero_shot_cot.log): real problems of ../shared/data, verbalised as their code verbalises
them (AQuA's spacing around parentheses, Date Understanding in an order of its own, "Which choice
is true ?"), each with one completion holding the rationale, the stage-2 trigger and the stage-2
answer, written for these tests. expected.json says, per record in file order, the problem it
answers (source_ref), the answer the verifier must read (for multiple choice, the stored option)
and the verdict.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from curation.db.session import Database
from curation.ingestion.service import ingest_files
from curation.models import Generation, Label, Problem, Rationale, TemplateStyle
from curation.teacher_outputs import import_teacher_outputs
from tests.conftest import ROOT
from workers.sandbox import Limits, Sandbox
from workers.verification import verify

FIXTURES = ROOT / "tests/data/kojima"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())

# task -> (log file, benchmark files, Fine-tune-CoT split file or None)
TASKS = {
    "addsub": ("addsub", ["mawps/AddSub.json"], "addsub"),
    "single_eq": ("singleeq", ["mawps/SingleEq.json"], "single_eq"),
    "multiarith": ("multiarith", ["mawps/MultiArith.json"], "multiarith"),
    "svamp": ("svamp", ["svamp/SVAMP.json"], "svamp"),
    "gsm8k": ("gsm8k", ["gsm8k/test.jsonl"], None),
    "aqua": ("aqua", ["aqua/test.json"], None),
    "commonsense_qa": ("commonsensqa", ["commonsenseqa/train_rand_split.jsonl",
                                        "commonsenseqa/dev_rand_split.jsonl"], None),
    "strategy_qa": ("strategyqa", ["bigbench/strategyqa.json"], "strategy_qa"),
    "date_understanding": ("date_understanding", ["bigbench/date_understanding.json"], "date_understanding"),
    "tracking_shuffled_objects": ("shuffled_objects", ["bigbench/tracking_shuffled_objects.json"],
                                  "tracking_shuffled_objects"),
    "coin_flip": ("coin_flip", ["symbolic/coin_flip.json"], "coin_flip"),
    "last_letter_concatenation": ("last_letters", ["symbolic/last_letters.json"], "last_letter_concatenation"),
}  # fmt: skip


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(Limits(wall_seconds=2.0), in_flight=2) as box:
        yield box


def test_every_task_has_a_fixture() -> None:
    assert set(EXPECTED) == set(TASKS)
    assert {f"{name}_zero_shot_cot.log" for name, _, _ in TASKS.values()} == {p.name for p in FIXTURES.glob("*.log")}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_a_kojima_log_imports_every_record_and_is_scored_by_the_rules(
    db: Database, shared_data: Path, sandbox: Sandbox, task: str
) -> None:
    log_name, files, split_name = TASKS[task]
    split_file = shared_data / f"ftcot/split/{split_name}__default.json" if split_name else None
    named = split_file is not None or len(files) > 1  # CommonsenseQA's file names say their split
    with db.transaction() as session:
        ingest_files(
            session, task, [shared_data / f for f in files], ftcot_split=split_file, split=None if named else "test"
        )
        report = import_teacher_outputs(
            session,
            FIXTURES / f"{log_name}_zero_shot_cot.log",
            task=task,
            teacher="text-davinci-002",
            style=TemplateStyle.zero_shot_cot,
        )
    expected = EXPECTED[task]
    assert (report.records, report.generations, report.unmatched) == (len(expected), len(expected), 0)
    assert report.gold_disagreements == 0  # every GT line agrees with the stored gold, through the options shown
    assert report.choices_assumed == 0  # multiple-choice records all said which options they saw

    verified = verify(db, sandbox)  # --pending: the imported generations are parsed first
    assert (verified.parsed, verified.labelled) == (len(expected), len(expected))
    with db.read() as session:
        rows = session.execute(
            select(Problem.source_ref, Rationale.answer, Label.verdict, Label.details, Generation.choice_order)
            .join(Generation, Generation.problem_id == Problem.id)
            .join(Rationale, Rationale.generation_id == Generation.id)
            .join(Label, Label.rationale_id == Rationale.id)
            .order_by(Generation.id)
        ).all()
    got = [(ref, answer, verdict.value) for ref, answer, verdict, _, _ in rows]
    assert got == [(e["source_ref"], e["answer"], e["verdict"]) for e in expected]
    assert {details["rule"] for *_, details, _ in rows} == {"zero-shot-cot-trigger"}
    if task in ("aqua", "commonsense_qa", "date_understanding", "tracking_shuffled_objects"):
        assert all(order is not None for *_, order in rows)
