"""Prompt templates: built-ins, Fine-tune-CoT few-shot prompts, user templates, immutable versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.db.session import Database
from curation.errors import InputError, NotFoundError
from curation.models import AnswerType, TemplateStyle
from curation.templates import (
    PAD_EXEMPLARS,
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
    assert second.text == first.text + " 3 + 2 = 5.\nTherefore, the answer is"
    assert template.render(MC).text.startswith("Q: Which is a fruit? Answer choices: (A) carrot, (B) pear.\nA:")


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
