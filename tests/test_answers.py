"""Answer extraction and matching, on real rationales where the data has them."""

from __future__ import annotations

import json
import random
import re
import time
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
        ("0.30000000000000004", "0.3", N, True),  # 0.1 + 0.2
        ("7.999999999999999", "8", N, True),
        ("57383200000.00001", "57383200000", N, True),  # 57383200000 / 92 * 92: noise beyond 1e-6, within 1e-9
        ("17.6", "18", N, False),  # PaD's round() would accept this
        ("1000001", "1000000", N, False),  # different integers never match, however large
        ("1000000000001", "1000000000000", N, False),
        ("123456789012345678", "123456789012345677", N, False),
        ("999999.9999", "1000000", N, True),  # within 1e-9 of the gold answer
        ("999999.99", "1000000", N, False),  # 1e-8 off: more than float noise
        ("33.333333333", "33.33333333333333333333333333", N, True),  # 100/3 to nine places
        ("33.333333", "33.33333333333333333333333333", N, True),  # six places: within 1e-6
        ("33.33333", "33.33333333333333333333333333", N, False),
        ("33.33", "33.33333333333333333333333333", N, False),
        ("0.33333", "0.3333333333333333", N, False),
        ("0.333333333333", "0.3333333333333333", N, True),
        ("1E+3", "1000", N, True),
        ("-0", "0", N, True),
        ("1e999999999", "1", N, False),
        ("NaN", "1", N, False),
        ("sNaN", "1", N, False),
        ("Infinity", "1", N, False),
        ("1", "NaN", N, False),
        ("0x1p3", "8", N, False),
        ("eight", "8", N, False),
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


HOSTILE = [
    "1e999999999",
    "-1e999999999",
    "-" + "9" * 5000,
    "9" * 5000,
    "0." + "0" * 5000 + "1",
    "9" * 5000 + "/7",
    "7/" + "9" * 5000,
    "NaN",
    "sNaN",
    "inf",
    "-Infinity",
    "1e-999999",
    "1e9999999999999999999",
    "0x1p3",
    "0b101",
    "1/0",
    "0/0",
    "10**10**10",
    "2^1000000",
    "1" + "0" * 200,
    "1," * 3000 + "000",
    "\x00",
    "\ud800",
    "",
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_model_output_never_raises(value: str) -> None:
    """No model output can make extraction, matching or judging raise, and none passes for gold 8."""
    texts = [
        value,
        f"The answer is {value}.",
        f"So 3 + 5 = {value} --> {value} END",
        f"Therefore, the answer is {value}",
    ]
    for text in texts:
        for answer_type in AnswerType:
            extraction = extract_cot_answer(text, answer_type, answer_output=value)
            for gold in ("8", "0", "1"):  # "1,1,...,1,000" is rightly 1 for gold 1: only 8 is never right
                judgement = judge_cot(text, gold, answer_type, answer_output=value)
                assert judgement.verdict is not Verdict.correct or gold != "8", (text[:80], answer_type)
                answers_match(extraction.answer, gold, answer_type)
            answer_from_program_value(text, answer_type)
            judge_program(ExecutionStatus.ok, text, "8", answer_type)
        assert answers_match(value, "8", N) is False
        assert answers_match("8", value, N) is False
        assert judge_program(ExecutionStatus.ok, value, "8", N).verdict is Verdict.unparseable


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 1e999999999.", None),  # out of range: not read as "1"
        ("The answer is 1e-999999.", None),
        ("The answer is 0x1p3.", None),  # a hex float literal, not 0
        ("The answer is 10**10**10.", None),  # a power, not 10
        ("The answer is 2^10 = 1024.", "1024"),
        ("The answer is 2 ** 10 = 1024.", "1024"),
        ("The answer is 1/0, or rather 7.", "7"),
        ("The answer is NaN, I think 3.", "3"),
        ("The answer is 2.5e3 dollars.", "2500"),
        ("The answer is " + "9" * 5000 + ", or 4.", "4"),
        ("First 3, then 1e999999999", "3"),  # last-candidate: the absurd one is no candidate
    ],
)
def test_numbers_that_are_not_answers(text: str, expected: str | None) -> None:
    assert extract_cot_answer(text, N).answer == expected


def test_random_hostile_outputs_never_raise() -> None:
    """Random strings over the characters that matter to number parsing and the markers."""
    rng = random.Random(1)
    alphabet = ["0", "9", "1", ".", ",", "-", "+", "e", "E", "x", "/", "*", "^", "$", "%", " ", "\n", "(", ")"]
    alphabet += ["A", "B", "yes", "no", "END", "-->", "The answer is", "NaN", "inf", "\x00", "\ud800", "9" * 400]
    choices = [{"label": x, "text": t} for x, t in zip("ABCDE", ["1e999", "NaN", "0x1", "1/0", "9" * 50], strict=True)]
    start = time.perf_counter()
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        for answer_type in AnswerType:
            extraction = extract_cot_answer(text, answer_type, choices=choices)
            answers_match(extraction.answer, "8", answer_type)
            answers_match(answer_from_program_value(text, answer_type, choices), "8", answer_type)
        answers_match(text, "8", N)
        answers_match("8", text, N)
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize(
    "text",
    [
        "The answer is" + " " * 200_000 + "x",  # was quadratic: re.sub(r"\s*END\s*$")
        "-->" + "\n" * 200_000 + "x",
        'The answer is "ab' + "." * 200_000 + "x",  # was quadratic: re.sub(r"[.\s]+$")
        "1 " * 100_000,
        "9" * 1_000_000,
        "(" + " " * 200_000,
    ],
    ids=["spaces", "newlines", "dots", "many-numbers", "long-number", "open-paren"],
)
def test_long_degenerate_outputs_take_linear_time(text: str) -> None:
    start = time.perf_counter()
    for answer_type in AnswerType:
        extract_cot_answer(text, answer_type)
    assert time.perf_counter() - start < 5
