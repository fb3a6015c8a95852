"""Answer extraction and matching, on real rationales where the data has them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from curation.answers.extract import answer_from_program_value, extract_cot_answer
from curation.answers.match import answers_match
from curation.answers.verdict import judge_cot, judge_program
from curation.ingestion.formats import parse_choices
from curation.models import AnswerType, ExecutionStatus, Verdict

N, MC, YN, TEXT = AnswerType.number, AnswerType.multiple_choice, AnswerType.yes_no, AnswerType.text


def exemplars(shared_data: Path, task: str) -> list[tuple[str, str]]:
    """(question, answer text) pairs of Fine-tune-CoT's few-shot prompt for a task."""
    prompt = json.loads((shared_data / "ftcot/few_shot_cot_prompts.json").read_text())[task]["prompt"]
    return re.findall(r"Q: (.*?)\nA: (.*?)(?=\nQ: |\Z)", prompt, flags=re.DOTALL)


# The few-shot exemplars are real CoT text; their final answers, read by hand.
FEW_SHOT = [
    ("gsm8k", N, ["6", "5", "39", "8", "9", "29", "33", "8"]),
    ("aqua", MC, ["A", "B", "E", "B"]),
    ("coin_flip", YN, ["no", "yes", "yes", "yes", "yes", "yes", "no", "yes"]),
    ("last_letter_concatenation", TEXT, ["aaye", "gsse", "alei", "ndoa", "skaa", "enln", "ayec", "ynny"]),
    ("strategy_qa", YN, ["yes", "yes", "no", "yes", "no", "no"]),
    ("date_understanding", MC, ["A", "C", "E", "E", "C", "D"]),
    ("commonsense_qa", MC, ["E", "C", "B", "A", "B", "D", "C"]),
]


@pytest.mark.parametrize(("task", "answer_type", "expected"), FEW_SHOT, ids=[t for t, _, _ in FEW_SHOT])
def test_few_shot_cot_exemplars(shared_data: Path, task: str, answer_type: AnswerType, expected: list[str]) -> None:
    pairs = exemplars(shared_data, task)
    found = [extract_cot_answer(answer, answer_type) for _, answer in pairs]
    assert {e.rule for e in found} == {"the-answer-is"}
    assert [e.answer for e in found] == expected


def test_fine_tune_cot_student_format_on_gsm8k(shared_data: Path) -> None:
    """Every GSM8K test solution rewritten as ` {rationale} --> {answer} END` gives its gold answer."""
    for line in (shared_data / "gsm8k/test.jsonl").read_text().splitlines():
        solution = json.loads(line)["answer"]
        rationale, _, gold = solution.rpartition("####")
        gold = gold.strip().replace(",", "")
        text = " " + re.sub(r"<<[^>]*>>", "", rationale).strip().replace("\n", " ") + f" --> {gold} END"
        extraction = extract_cot_answer(text, N)
        assert (extraction.rule, extraction.answer) == ("fine-tune-cot-arrow", gold), text


def test_last_number_fallback_on_gsm8k_solutions(shared_data: Path) -> None:
    """Without any marker the last number counts; GSM8K's worked solutions end on their answer."""
    agree = total = 0
    for line in (shared_data / "gsm8k/test.jsonl").read_text().splitlines()[:500]:
        solution = json.loads(line)["answer"]
        rationale, _, gold = solution.rpartition("####")
        extraction = extract_cot_answer(re.sub(r"<<[^>]*>>", "", rationale), N)
        assert extraction.rule == "last-candidate"
        total += 1
        agree += answers_match(extraction.answer, gold.strip().replace(",", ""), N)
    assert agree / total > 0.95


@pytest.mark.parametrize(
    ("stage_two", "answer_type", "expected"),
    [
        (" 18.", N, "18"),
        (" $1,080.00 in total.", N, "1080"),
        (" -3.5 degrees", N, "-3.5"),
        (" 3/4 of the pie", N, "0.75"),
        (" 50%.", N, "50"),
        (" (C) 3/4", MC, "C"),
        (" C.", MC, "C"),
        (" yes, it would.", YN, "yes"),
        (' "ynny".', TEXT, "ynny"),
        (" nothing useful", N, None),
    ],
)
def test_zero_shot_cot_two_stage(stage_two: str, answer_type: AnswerType, expected: str | None) -> None:
    rationale = "There were 9 of them and 9 more came, 9 + 9 = 18, which is the first number we need."
    choices = [{"label": x, "text": t} for x, t in zip("ABCDE", ["1/4", "1/2", "3/4", "1", "2"], strict=True)]
    extraction = extract_cot_answer(rationale, answer_type, answer_output=stage_two, choices=choices)
    assert (extraction.rule, extraction.answer) == ("zero-shot-cot-stage-2", expected)


def test_single_text_with_therefore() -> None:
    text = "Let's think step by step. 4 + 5 = 9 apples, then 9 * 2 = 18. Therefore, the answer is 18 apples."
    assert extract_cot_answer(text, N).answer == "18"


def test_first_candidate_after_the_marker_last_before_it() -> None:
    assert extract_cot_answer("The answer is 12, not 13.", N).answer == "12"
    assert extract_cot_answer("First 3, then 4, finally 7", N).answer == "7"
    assert extract_cot_answer("We have 1,000 and 2, 3 left", N).answer == "3"  # commas only group thousands


def test_multiple_choice_by_option_text(shared_data: Path) -> None:
    record = json.loads((shared_data / "aqua/test.json").read_text().splitlines()[0])
    choices = parse_choices(record["options"])
    assert extract_cot_answer("So the answer is 5(√3 + 1) minutes.", MC, choices=choices).answer == "A"
    # A lone article "A" is not taken for option A when an option letter in parentheses exists.
    assert extract_cot_answer("The answer is A tricky one: (C).", MC, choices=choices).answer == "C"


def test_free_text_needs_a_marker() -> None:
    assert extract_cot_answer("Concatenating them is ynny", TEXT).answer is None


@pytest.mark.parametrize(
    ("predicted", "gold", "answer_type", "same"),
    [
        ("18", "18", N, True),
        ("18.000000000000004", "18", N, True),  # float noise from a program
        ("17.6", "18", N, False),  # PaD's round() would accept this
        ("0.33333", "0.3333333333333333", N, False),
        ("0.333333333333", "0.3333333333333333", N, True),
        ("1E+3", "1000", N, True),
        ("-0", "0", N, True),
        ("C", "C", MC, True),
        ("B", "C", MC, False),
        ("yes", "yes", YN, True),
        ("YNNY", "ynny", TEXT, True),
        ('"y n n y".', "ynny", TEXT, True),
        (None, "1", N, False),
    ],
)
def test_matching(predicted: str | None, gold: str, answer_type: AnswerType, same: bool) -> None:
    assert answers_match(predicted, gold, answer_type) is same


def test_fine_tune_cot_string_comparison_is_not_ours() -> None:
    """Fine-tune-CoT compares GSM8K answers as strings, so its "18.0" misses gold "18"."""
    predicted, gold = "18.0", "18"
    assert predicted != gold
    assert answers_match(answer_from_program_value(predicted, N), gold, N)


@pytest.mark.parametrize(
    ("value", "answer_type", "expected"),
    [
        ("18.0", N, "18"),
        ("70000.0", N, "70000"),
        ("(4, 6.0)", N, None),
        ("None", N, None),
        ("True", YN, "yes"),
        ("False", YN, "no"),
        ("(B)", MC, "B"),
        ("ynny", TEXT, "ynny"),
    ],
)
def test_program_values(value: str, answer_type: AnswerType, expected: str | None) -> None:
    assert answer_from_program_value(value, answer_type) == expected


def test_verdicts() -> None:
    assert judge_program(ExecutionStatus.ok, "72.0", "72", N).verdict is Verdict.correct
    assert judge_program(ExecutionStatus.ok, "71", "72", N).verdict is Verdict.incorrect
    assert judge_program(ExecutionStatus.ok, None, "72", N).verdict is Verdict.unparseable
    assert (
        judge_program(ExecutionStatus.syntax, None, "72", N, error_type="SyntaxError").verdict is Verdict.unparseable
    )
    for status in (ExecutionStatus.error, ExecutionStatus.timeout, ExecutionStatus.memory, ExecutionStatus.killed):
        assert judge_program(status, None, "72", N).verdict is Verdict.error
    cot = judge_cot("5 + 5 = 10. The answer is 10.", "10", N)
    assert (cot.verdict, cot.answer, cot.details["rule"], cot.score) == (Verdict.correct, "10", "the-answer-is", 1.0)
    assert judge_cot("I am not sure.", "10", N).verdict is Verdict.unparseable
