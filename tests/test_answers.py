"""Answer extraction and matching, on real rationales where the data has them."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from curation.answers.choices import choice_order, split_verbalised
from curation.answers.extract import answer_from_program_value, extract_cot_answer
from curation.answers.match import answers_match, match_rule, rounded_gold_places
from curation.answers.verdict import judge_cot, judge_program
from curation.ingestion.formats import parse_choices
from curation.models import AnswerType, ExecutionStatus, RationaleKind, Verdict
from curation.rationales import rationale_body

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


@pytest.mark.parametrize(
    ("text", "answer_output", "expected"),
    [
        ("So she has three left. The answer is three.", None, "3"),
        ("Therefore, the answer (arabic numerals) is twenty-five.", None, "25"),
        ("The answer is One hundred and five apples.", None, "105"),
        ("Answer: two million five thousand", None, "2005000"),
        ("The answer is minus twelve degrees.", None, "-12"),
        ("He paid $40.", " forty dollars.", "40"),
        ("The answer is 3 (three).", None, "3"),
        # Words of the sentence, not counts: the digits that follow decide, or nothing does.
        ("The answer is one of the 4 boxes.", None, "4"),
        ("The answer is two-thirds.", None, None),
        ("The answer is five three.", None, None),
        ("The answer is none.", None, None),
        # Outside an answer, words are the story: the last digits count, never "one day".
        ("One day she bought 4 pens and two pencils.", None, "4"),
    ],
)
def test_numbers_in_words_after_a_marker(text: str, answer_output: str | None, expected: str | None) -> None:
    assert extract_cot_answer(text, N, answer_output=answer_output).answer == expected


def test_random_hostile_outputs_never_raise() -> None:
    """Random strings over the characters that matter to number parsing and the markers."""
    rng = random.Random(1)
    alphabet = ["0", "9", "1", ".", ",", "-", "+", "e", "E", "x", "/", "*", "^", "$", "%", " ", "\n", "(", ")"]
    alphabet += ["A", "B", "yes", "no", "END", "-->", "The answer is", "NaN", "inf", "\x00", "\ud800", "9" * 400]
    choices = [{"label": x, "text": t} for x, t in zip("ABCDE", ["1e999", "NaN", "0x1", "1/0", "9" * 50], strict=True)]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        for answer_type in AnswerType:
            extraction = extract_cot_answer(text, answer_type, choices=choices)
            answers_match(extraction.answer, "8", answer_type)
            answers_match(answer_from_program_value(text, answer_type, choices), "8", answer_type)
        answers_match(text, "8", N)
        answers_match("8", text, N)


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
@pytest.mark.timeout(120)
def test_long_degenerate_outputs_take_linear_time(text: str) -> None:
    """A quadratic pass over these texts takes hours; a linear one seconds, even on a loaded machine.
    The timeout fails the test (no timed assertion: speed itself is measured in bench/)."""
    for answer_type in AnswerType:
        extract_cot_answer(text, answer_type)


# --- Version 2: every case issue 8 names -------------------------------------------------------------

CHOICES_2_24 = [{"label": "A", "text": "2"}, {"label": "B", "text": "24"}, {"label": "C", "text": "6"}]
CHOICES_MONEY = [{"label": "A", "text": "money"}, {"label": "B", "text": "money bank"}, {"label": "C", "text": "bank"}]
FIVE = [{"label": x, "text": t} for x, t in zip("ABCDE", ["1", "2", "3", "4", "5"], strict=True)]


@pytest.mark.parametrize(
    ("text", "answer_type", "choices", "expected"),
    [
        # Kojima et al.'s triggers, inside a single completion; the last one counts.
        ("9 + 9 = 18.\nTherefore, the answer (arabic numerals) is 18.", N, None, "18"),
        ("So (E).\nTherefore, among A through E, the answer is B.", MC, FIVE, "B"),
        ("It stays heads up.\nTherefore, the answer (Yes or No) is Yes.", YN, None, "yes"),
        ('So "nkea".\nTherefore, the answer is "nkea".', TEXT, None, "nkea"),
        ("Therefore, the answer is 26.\nTherefore, among A through E, the answer is C.", MC, FIVE, "C"),
        # The trigger's hint words are never candidates.
        ("Hmm.\nTherefore, the answer (Yes or No) is unclear.", YN, None, None),
        ("Hmm.\nTherefore, among A through E, the answer is unclear.", MC, FIVE, None),
        # An earlier "the answer is" never beats the stage-2 answer.
        ("The answer is 12 for now.\nTherefore, the answer (arabic numerals) is 15.", N, None, "15"),
        # Markdown emphasis; ** between two numbers is still a power.
        ("The answer is **42**.", N, None, "42"),
        ("**Answer: 42**", N, None, "42"),
        ("So she pays **$1,250**.", N, None, "1250"),
        ("The answer is 2**10.", N, None, None),
        ("2**10 = 1024", N, None, "1024"),
        # A fraction before a full stop.
        ("The answer is 3/4.", N, None, "0.75"),
        # Unicode minus and dashes glued to a digit are signs; a binary minus is not.
        ("The answer is −12.", N, None, "-12"),
        ("The answer is –12.", N, None, "-12"),
        ("x - 10 = 50", N, None, "50"),
        # Option texts: word boundaries, the longest option on ties.
        ("The answer is 24", MC, CHOICES_2_24, "B"),
        ("The answer is 2", MC, CHOICES_2_24, "A"),
        ("The answer is money bank", MC, CHOICES_MONEY, "B"),
        ("The answer is money", MC, CHOICES_MONEY, "A"),
        # Lowercase letters; letters in order of appearance; formulas hold none.
        ("The answer is b", MC, FIVE, "B"),
        ("The answer is b)", MC, FIVE, "B"),
        ("The answer is D, though (A) was close.", MC, FIVE, "D"),
        ("The answer is D since P(A AND B) = 0.3.", MC, FIVE, "D"),
        ("The answer is 5C3 = 10, so E.", MC, FIVE, "E"),
        # Yes/no: true/false; with no marker the first yes/no word of the last sentence.
        ("The answer is true.", YN, None, "yes"),
        ("The answer is False.", YN, None, "no"),
        ("Yes, sharks have no bones.", YN, None, "yes"),
    ],
)
def test_issue_8_cases(
    text: str, answer_type: AnswerType, choices: list[dict[str, str]] | None, expected: str | None
) -> None:
    assert extract_cot_answer(text, answer_type, choices=choices).answer == expected


@pytest.mark.parametrize(
    ("answer_output", "answer_type", "expected"),
    [
        (" 18.", N, "18"),
        (" (arabic numerals) is 18", N, "18"),
        (" (Yes or No) No.", YN, "no"),
        (" among A through E, the answer is C.", MC, "C"),
        (" Therefore, the answer (arabic numerals) is 7.", N, "7"),
    ],
)
def test_stage_two_output_beats_the_rationale_and_drops_hint_words(
    answer_output: str, answer_type: AnswerType, expected: str
) -> None:
    rationale = "The answer is 3. Yes, it is option A. Therefore, the answer is 9."
    extraction = extract_cot_answer(rationale, answer_type, answer_output=answer_output, choices=FIVE)
    assert (extraction.rule, extraction.answer) == ("zero-shot-cot-stage-2", expected)


def test_the_arrow_rule_is_for_student_format_text_only() -> None:
    teacher = " 5 --> 6 by adding one, then doubling.\nTherefore, the answer (arabic numerals) is 12."
    assert extract_cot_answer(teacher, N).answer == "12"
    assert extract_cot_answer(" 5 --> 6", N, answer_output=" 12").answer == "12"
    assert extract_cot_answer(" 2 + 3 = 5 --> 5 END", N).rule == "fine-tune-cot-arrow"
    # A student's output follows its format however it runs on; a teacher's does not.
    rambling = " 4 * 12 --> 48 cookies. She sells 20, so 28 remain. The answer is 28."
    assert extract_cot_answer(rambling, N, student=True).answer == "48"
    assert extract_cot_answer(rambling, N).answer == "28"
    assert judge_cot(rambling, "48", N, student=True).verdict is Verdict.correct


@pytest.mark.parametrize(
    ("predicted", "gold", "rule"),
    [
        ("3.3333", "3.333", "rounded-gold"),  # ASDiv's 10/3
        ("3.333333333333333333333333333", "3.333", "rounded-gold"),
        ("3.333", "3.333", "exact"),
        ("3.3336", "3.333", None),
        ("3.33", "3.333", None),
        ("5.67", "5.7", "rounded-gold"),  # 51/9 siblings
        ("53.25", "53.3", "rounded-gold"),  # half up
        ("1.3333", "1.33", "rounded-gold"),
        ("2.45", "2.5", None),  # 5/2 is exact
        ("0.4612", "0.46", None),  # 0.46 is no rounding of a simple repeating fraction
        ("17.6", "18", None),  # integers are never rounded values
        ("18.4", "18", None),
        ("0.30000000000000004", "0.3", "tolerance"),
    ],
)
def test_numbers_against_a_rounded_gold(predicted: str, gold: str, rule: str | None) -> None:
    assert match_rule(predicted, gold, N) == rule
    judgement = judge_cot(f"The answer is {predicted}.", gold, N)
    assert judgement.details["match"] == rule
    assert judgement.verdict is (Verdict.correct if rule else Verdict.incorrect)


@pytest.mark.parametrize(
    ("gold", "places"),
    [
        ("3.333", 3),
        ("5.7", 1),
        ("14.29", 2),
        ("0.67", 2),
        ("2.5", None),
        ("0.46", None),
        ("18", None),
        ("0.395", None),
    ],
)
def test_which_golds_are_rounded_values(gold: str, places: int | None) -> None:
    assert rounded_gold_places(gold) == places


def test_letters_are_scored_against_the_options_the_teacher_saw() -> None:
    stored = [{"label": x, "text": t} for x, t in zip("ABC", ["Karl", "Sam", "Helga"], strict=True)]
    seen = ["B", "C", "A"]  # the teacher's prompt showed (A) Sam (B) Helga (C) Karl
    right = judge_cot("Therefore, among A through C, the answer is C.", "A", MC, choices=stored, choice_order=seen)
    assert (right.verdict, right.answer, right.details["extracted"], right.details["option"]) == (
        Verdict.correct,
        "A",
        "C",
        "A",
    )
    wrong = judge_cot("Therefore, among A through C, the answer is A.", "A", MC, choices=stored, choice_order=seen)
    assert (wrong.verdict, wrong.answer) == (Verdict.incorrect, "B")
    by_text = judge_cot("So Alice dances with Karl.", "A", MC, choices=stored, choice_order=seen)
    assert by_text.verdict is Verdict.correct
    as_stored = judge_cot("Therefore, among A through C, the answer is A.", "A", MC, choices=stored)
    assert as_stored.verdict is Verdict.correct  # no recorded order: the stored one


def test_program_fences_python3_are_stripped() -> None:
    for fence in ("```python", "```python3", "```Python3", "```py", "```"):
        output = f"Here is the program:\n{fence}\nans = 3 + 4\n```\nIt prints 7."
        assert rationale_body(output, RationaleKind.program) == "ans = 3 + 4", fence


def test_a_cot_cut_at_an_invented_exemplar_keeps_the_stage_two_answer_after_it() -> None:
    output = (
        " 9 + 9 = 18 apples.\nQ: Tom has 3 pens and buys 2 more. How many?\nA: 5 pens.\n"
        "Therefore, the answer (arabic numerals) is 18."
    )
    body = rationale_body(output, RationaleKind.cot)
    assert body == "9 + 9 = 18 apples.\nTherefore, the answer (arabic numerals) is 18."
    assert extract_cot_answer(body, N).answer == "18"
    few_shot = " 3 * 4 = 12. The answer is 12.\nQ: What is 2 + 2?\nA: So the answer is 4."
    assert rationale_body(few_shot, RationaleKind.cot) == "3 * 4 = 12. The answer is 12."


def test_verbalised_choices_are_read_in_every_published_form() -> None:
    kojima = "What are candles good for eliminating? Answer Choices: (A) shelf (B) board (C) church (D) table (E) dark"
    ftcot = "Alice has the \nWhich choice is true? Answer choices: (A) orange ball, (B) white ball, (C) blue ball."
    kojima_aqua = "Q? Answer Choices: (A) 5 (√3 + 1)  (B) 6 (√3 + √2)  (C) None of these"
    pal = "Q? Answer Choices:(a)1/2(b)3/4"
    assert split_verbalised(kojima) == (
        "What are candles good for eliminating?",
        [{"label": x, "text": t} for x, t in zip("ABCDE", ["shelf", "board", "church", "table", "dark"], strict=True)],
    )
    assert split_verbalised(ftcot) == (
        "Alice has the",
        [{"label": x, "text": t} for x, t in zip("ABC", ["orange ball", "white ball", "blue ball"], strict=True)],
    )
    stem, options = split_verbalised(kojima_aqua) or ("", [])
    stored = [
        {"label": "A", "text": "5(√3 + 1)"},
        {"label": "B", "text": "6(√3 + √2)"},
        {"label": "C", "text": "None of these"},
    ]
    assert stem == "Q?" and choice_order(options, stored) == ["A", "B", "C"]
    assert [o["text"] for o in (split_verbalised(pal) or ("", []))[1]] == ["1/2", "3/4"]
    assert split_verbalised("How many apples? (A) is a label here") is None
    shuffled = [{"label": "A", "text": "Helga."}, {"label": "B", "text": "Sam."}, {"label": "C", "text": "Karl."}]
    assert choice_order(split_verbalised(ftcot.replace("orange ball", "Sam").replace("white ball", "Karl").replace(
        "blue ball", "Helga"))[1], shuffled) == ["B", "C", "A"]  # type: ignore[index]  # fmt: skip
    assert choice_order(options, shuffled) is None  # not the same options
