"""The answer corpus: teacher outputs in the shapes real teachers write, each with its expected
answer and verdict, run through the same path a generation takes (rationale_body, then judge_cot).

tests/data/answer_corpus.jsonl, one case a line: `text` (the teacher's output), `stage2` (a
separate stage-2 completion, or null), `answer_type`, `choices` (the stored options) and
`choice_order` (the stored labels in the order the prompt showed them, or null), `student`,
`gold`, `expected_answer` (canonical; for multiple choice the stored option), `expected_verdict`,
and optionally `expected_extraction_rule` and `expected_match`; `rule` names the rule of
docs/verification.md the case exercises. A change to a regex that breaks one of them fails here.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from curation.answers.verdict import judge_cot
from curation.models import AnswerType, RationaleKind, Verdict
from curation.rationales import rationale_body
from tests.conftest import ROOT

CORPUS = [json.loads(line) for line in (ROOT / "tests/data/answer_corpus.jsonl").read_text().splitlines() if line]

# Every rule of docs/verification.md ("Finding the answer", "Matching") has cases.
RULES = {
    "stage2-separate", "stage2-in-completion", "stage2-last-trigger", "stage2-hint-words", "dangling-trigger",
    "markdown-emphasis", "power-not-emphasis", "latex", "fraction-full-stop", "unicode-minus", "binary-minus",
    "mixed-number", "equation-result", "mc-word-boundary", "mc-longest-option", "mc-option-number",
    "mc-lowercase-letter", "mc-letter-order", "mc-formula-letter", "mc-article", "mc-shown-order",
    "yes-no-true-false", "yes-no-last-sentence", "yes-no-statement", "mc-no-marker", "text-last-quotation",
    "student-arrow", "teacher-arrow-ignored", "rounded-gold",
    "not-rounded", "tolerance", "few-shot-answer-is", "answer-label", "answer-heading", "gsm8k-hashes",
    "last-candidate", "text-quoted", "text-first-sentence", "invented-exemplar", "chat-teacher", "unparseable",
    "scale-word", "sign-word", "vulgar-fraction", "text-leading-punctuation", "mc-quoted-letter", "share-words",
}  # fmt: skip


def test_the_corpus_covers_every_answer_type_verdict_and_rule() -> None:
    assert len(CORPUS) >= 300
    assert len({case["id"] for case in CORPUS}) == len(CORPUS)
    types = Counter(case["answer_type"] for case in CORPUS)
    assert set(types) == {t.value for t in AnswerType} and min(types.values()) >= 25
    assert {case["expected_verdict"] for case in CORPUS} == {"correct", "incorrect", "unparseable"}
    assert {case["rule"] for case in CORPUS} == RULES
    assert {case.get("expected_match") for case in CORPUS} >= {"exact", "tolerance", "rounded-gold"}


@pytest.mark.parametrize("case", CORPUS, ids=[case["id"] for case in CORPUS])
def test_corpus_case(case: dict[str, Any]) -> None:
    body = rationale_body(case["text"], RationaleKind.cot)
    judgement = judge_cot(
        body,
        case["gold"],
        AnswerType(case["answer_type"]),
        answer_output=case["stage2"],
        choices=case["choices"],
        choice_order=case["choice_order"],
        student=case["student"],
    )
    assert (judgement.answer, judgement.verdict) == (case["expected_answer"], Verdict(case["expected_verdict"])), (
        case.get("note"),
        judgement.details,
    )
    if "expected_extraction_rule" in case:
        assert judgement.details["rule"] == case["expected_extraction_rule"]
    if "expected_match" in case:
        assert judgement.details["match"] == case["expected_match"]
