"""Prompt templates: built-ins, Fine-tune-CoT few-shot prompts, user templates, immutable versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.db.session import Database
from curation.errors import InputError, NotFoundError
from curation.models import AnswerType, TemplateStyle
from curation.templates import (
    PAD_EXEMPLARS,
    ZERO_SHOT_COT,
    CompiledTemplate,
    ProblemView,
    add_few_shot_from_ftcot,
    add_template,
    choices_text,
    resolve_template,
)

QUESTION = ProblemView("Sam has 3 apples and buys 2 more. How many now?", None, "gsm8k", AnswerType.number)
MC = ProblemView(
    "Which is a fruit?",
    [{"label": "A", "text": "carrot"}, {"label": "B", "text": "pear"}],
    "csqa",
    AnswerType.multiple_choice,
)


def test_zero_shot_cot_two_stages(sqlite_db: Database) -> None:
    with sqlite_db.transaction() as session:
        template = CompiledTemplate(resolve_template(session, "zero-shot-cot"))
    first = template.render(QUESTION)
    assert first.text == "Q: Sam has 3 apples and buys 2 more. How many now?\nA: Let's think step by step."
    second = template.render_answer_stage(QUESTION, first, " 3 + 2 = 5.")
    assert second.text == first.text + " 3 + 2 = 5.\nTherefore, the answer (arabic numerals) is"
    assert template.render(MC).text.startswith("Q: Which is a fruit? Answer choices: (A) carrot, (B) pear.\nA:")


@pytest.mark.parametrize(
    ("problem", "trigger"),
    [
        (QUESTION, "Therefore, the answer (arabic numerals) is"),
        (MC, "Therefore, among A through B, the answer is"),
        (
            ProblemView("Is a pear a fruit?", None, "strategy_qa", AnswerType.yes_no),
            "Therefore, the answer (Yes or No) is",
        ),
        (
            ProblemView('Take the last letters of "Ann Bo".', None, "last_letters", AnswerType.text),
            "Therefore, the answer is",
        ),
    ],
    ids=["number", "multiple-choice", "yes-no", "text"],
)
def test_zero_shot_cot_stage_two_trigger_per_answer_type(
    sqlite_db: Database, problem: ProblemView, trigger: str
) -> None:
    """Kojima et al.'s triggers; over chat, stage 2 is the assistant's own turn, to be continued."""
    with sqlite_db.transaction() as session:
        template = CompiledTemplate(resolve_template(session, "zero-shot-cot"))
    first = template.render(problem)
    second = template.render_answer_stage(problem, first, " Some reasoning.")
    assert second.text == f"{first.text} Some reasoning.\n{trigger}"
    assert not first.continues_assistant and first.messages() == [{"role": "user", "content": first.text}]
    assert second.continues_assistant
    assert second.messages() == [
        {"role": "user", "content": first.text},
        {"role": "assistant", "content": f" Some reasoning.\n{trigger}"},
    ]


def test_an_older_built_in_gets_a_new_version(sqlite_db: Database) -> None:
    """A database holding zero-shot-cot's earlier text (one trigger for every task) gets the
    current one as a new version when a run asks for the template by name."""
    with sqlite_db.transaction() as session:
        old = add_template(
            session, name="zero-shot-cot", style=TemplateStyle.zero_shot_cot, text=ZERO_SHOT_COT,
            answer_text="{{ prompt }}{{ rationale }}\nTherefore, the answer is",
        )  # fmt: skip
        current = resolve_template(session, "zero-shot-cot")
        assert (old.version, current.version) == (1, 2)
        assert current.answer_text is not None and "answer_trigger" in current.answer_text
        assert resolve_template(session, "zero-shot-cot").id == current.id  # and only once


def test_pad_program_prompt_exemplars_are_correct_programs(sqlite_db: Database) -> None:
    with sqlite_db.transaction() as session:
        prompt = CompiledTemplate(resolve_template(session, "pad-program")).render(QUESTION).text
    assert prompt.endswith("Question: Sam has 3 apples and buys 2 more. How many now?\nSolution:\n")
    exemplars = prompt.split("Question: ")[1:-1]
    assert len(exemplars) == len(PAD_EXEMPLARS) == 4
    expected = [216, 105, 32, 35.5]
    for text, value in zip(exemplars, expected, strict=True):
        namespace: dict[str, object] = {}
        exec(text.split("Solution:\n", 1)[1], namespace)  # our own exemplars, not model output
        assert namespace["solution"]() == value  # type: ignore[operator]


def test_few_shot_cot_from_fine_tune_cot_file(sqlite_db: Database, shared_data: Path) -> None:
    path = shared_data / "ftcot/few_shot_cot_prompts.json"
    with sqlite_db.transaction() as session:
        row = add_few_shot_from_ftcot(session, path, "gsm8k")
        rendered = CompiledTemplate(row).render(QUESTION).text
    assert row.name == "few-shot-cot-gsm8k" and row.style is TemplateStyle.few_shot_cot
    assert rendered.startswith("Q: There are 15 trees in the grove.")
    assert rendered.endswith("The answer is 8.\nQ: Sam has 3 apples and buys 2 more. How many now?\nA:")
    with pytest.raises(InputError, match="no few-shot prompt for 'nope'"), sqlite_db.transaction() as session:
        add_few_shot_from_ftcot(session, path, "nope")


def test_templates_are_immutable_versions(sqlite_db: Database) -> None:
    with sqlite_db.transaction() as session:
        first = add_template(session, name="mine", style=TemplateStyle.program, text="Solve: {{ question }}\n")
        same = add_template(session, name="mine", style=TemplateStyle.program, text="Solve: {{ question }}\n")
        second = add_template(session, name="mine", style=TemplateStyle.program, text="Solve this: {{ question }}\n")
        assert (first.id, first.version) == (same.id, 1)
        assert second.version == 2
        assert resolve_template(session, "mine").id == second.id
        assert resolve_template(session, "mine", 1).id == first.id
        with pytest.raises(NotFoundError, match="no template 'other'"):
            resolve_template(session, "other")


@pytest.mark.parametrize(
    ("text", "message"),
    [("{{ questoin }}", "unknown variable"), ("{% if %}", "template syntax error")],
)
def test_bad_templates_are_refused_when_added(sqlite_db: Database, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message), sqlite_db.transaction() as session:
        add_template(session, name="broken", style=TemplateStyle.program, text=text)


def test_choices_text() -> None:
    assert choices_text(None) == ""
    assert choices_text([{"label": "A", "text": "5"}, {"label": "B", "text": "6"}]) == " Answer choices: (A) 5, (B) 6."
