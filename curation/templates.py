"""Prompt templates: Jinja2 text, stored as immutable versions, rendered for chat or completion models.

Variables a template can use: ``question``; ``choices`` (a list of ``{"label", "text"}``, empty
when the task has none) and ``choices_text`` (`` Answer choices: (A) 5, (B) 6.`` as Fine-tune-CoT
verbalises them, or ``""``); ``task`` and ``answer_type``; ``answer_trigger``, Kojima et al.'s
stage-2 trigger for the answer type (curation/answers/triggers.py). The second stage of
zero-shot-CoT also gets ``prompt`` (the first stage's prompt) and ``rationale`` (the teacher's
first answer). Undefined variables are errors, so a typo fails when the template is added, not
mid-run.

A second stage that starts with the first stage's prompt continues the teacher's own text. For a
completions endpoint that is the whole text; over a chat API it is the first prompt as the user's
turn and the rest (the rationale and the trigger) as the start of the assistant's turn, which the
teacher continues instead of replying to it (`Prompt.messages`). Runs of a two-stage template ask
an HTTP teacher through its completions endpoint unless told otherwise.

Built in:
- ``zero-shot-cot``: Kojima et al.'s two stages, ``Q: {question}\\nA: Let's think step by step.``,
  then ``{prompt}{rationale}\\n{answer_trigger}``: "Therefore, the answer (arabic numerals) is",
  "Therefore, among A through E, the answer is" (the task's first and last letters), "Therefore,
  the answer (Yes or No) is" or "Therefore, the answer is" (free text);
- ``pad-program``: PaD's few-shot program prompt (``def solution(): ... return result``), with
  exemplars written for this project: PaD's own exemplars are GSM8K *test* questions, which would
  leak evaluation data into training;
- few-shot CoT prompts are read from Fine-tune-CoT's ``few_shot_cot_prompts.json`` (any path), one
  template per task (``few-shot-cot-<task>``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy import select
from sqlalchemy.orm import Session

from curation import student_prompt
from curation.answers.triggers import stage_two_trigger
from curation.errors import CurationError, InputError, NotFoundError
from curation.models import AnswerType, PromptTemplate, TemplateStyle
from curation.repositories import templates as template_repo

_ENVIRONMENT = jinja2.Environment(
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False, trim_blocks=False
)

ZERO_SHOT_COT = "Q: {{ question }}{{ choices_text }}\nA: Let's think step by step."
ZERO_SHOT_COT_ANSWER = "{{ prompt }}{{ rationale }}\n{{ answer_trigger }}"

PAD_EXEMPLARS = [
    (
        "A bakery sells muffins for $3 each. On Monday it sold 24 muffins and on Tuesday twice as many. "
        "How much money did it make from muffins on those two days?",
        [
            ("price_per_muffin = 3", "Each muffin costs $3."),
            ("muffins_monday = 24", "24 muffins were sold on Monday."),
            ("muffins_tuesday = muffins_monday * 2", "Twice as many were sold on Tuesday."),
            ("total_muffins = muffins_monday + muffins_tuesday", None),
            ("result = total_muffins * price_per_muffin", "Money made from all the muffins."),
        ],
    ),
    (
        "Tom reads 15 pages of a 180-page book every evening. After 5 evenings, how many pages are left?",
        [
            ("total_pages = 180", None),
            ("pages_per_evening = 15", None),
            ("evenings = 5", None),
            ("pages_read = pages_per_evening * evenings", "Pages read so far."),
            ("result = total_pages - pages_read", "Pages still to read."),
        ],
    ),
    (
        "A garden has 6 rows of 8 tulips. A third of the tulips are red and the rest are yellow. "
        "How many yellow tulips are there?",
        [
            ("rows = 6", None),
            ("tulips_per_row = 8", None),
            ("total_tulips = rows * tulips_per_row", None),
            ("red_tulips = total_tulips / 3", "A third of the tulips are red."),
            ("result = total_tulips - red_tulips", "The rest are yellow."),
        ],
    ),
    (
        "Maria has $50. She buys 3 notebooks at $4 each and a pen for $2.50. How much money does she have left?",
        [
            ("money_start = 50", None),
            ("notebook_cost = 3 * 4", "Three notebooks at $4 each."),
            ("pen_cost = 2.50", None),
            ("money_spent = notebook_cost + pen_cost", None),
            ("result = money_start - money_spent", "What is left after shopping."),
        ],
    ),
]


def _pad_exemplar(question: str, steps: list[tuple[str, str | None]]) -> str:
    lines = [f"Question: {question}", "Solution:", "def solution():", f'    """{question}"""']
    for code, comment in steps:
        if comment:
            lines.append(f"    # {comment}")
        lines.append(f"    {code}")
    lines.append("    return result")
    return "\n".join(lines)


PAD_PROGRAM = (
    "\n\n".join(_pad_exemplar(q, steps) for q, steps in PAD_EXEMPLARS)
    + "\n\nQuestion: {{ question }}{{ choices_text }}\nSolution:\n"
)

# The prompt formats students are evaluated in, as templates of their evaluations' synthesis runs
# (curation/student_prompt.py builds the prompts; these render the same text, a test checks).
_VERBALISED = "{{ (question.strip() ~ choices_text).strip() }}"
STUDENT_TEMPLATES: dict[str, tuple[str, str]] = {
    "ftcot": ("student-ftcot", _VERBALISED + student_prompt.FTCOT_PROMPT_END),
    "pad": ("student-pad", _VERBALISED + student_prompt.PAD_PROMPT_END),
}


def ensure_student_template(session: Session, fmt: str) -> PromptTemplate:
    """The template of the prompt format `fmt` (ftcot, or pad for program students; a repair
    student is evaluated on the program prompt)."""
    name, text = STUDENT_TEMPLATES["ftcot" if fmt == "ftcot" else "pad"]
    return template_repo.ensure_template(session, name=name, style=TemplateStyle.student, text=text)


BUILT_IN: dict[str, tuple[TemplateStyle, str, str | None]] = {
    "zero-shot-cot": (TemplateStyle.zero_shot_cot, ZERO_SHOT_COT, ZERO_SHOT_COT_ANSWER),
    "pad-program": (TemplateStyle.program, PAD_PROGRAM, None),
}


def default_stop(style: TemplateStyle) -> tuple[str, ...]:
    """Stop sequences for a run that names none. Few-shot prompts invite the teacher to go on with
    an invented next exemplar; stopping at its first line saves those tokens (rationale_body also
    cuts it off, for servers that ignore `stop`)."""
    if style is TemplateStyle.program:
        return ("\nQuestion:", "\nQ:")
    if style is TemplateStyle.few_shot_cot:
        return ("\nQ:",)
    return ()


def choices_text(choices: list[dict[str, str]] | None) -> str:
    # Teachers see the options as students do (Fine-tune-CoT's verbalisation).
    return student_prompt.choices_text(choices)


@dataclass(frozen=True)
class Prompt:
    """A rendered request: `text` for completion endpoints; `messages()` wraps it for chat ones.

    `continues_at`: where the teacher's own earlier text begins in `text` (zero-shot-CoT's second
    stage); over chat, what follows is sent as the assistant's unfinished turn.
    """

    text: str
    continues_at: int | None = None

    @property
    def continues_assistant(self) -> bool:
        return self.continues_at is not None

    def messages(self) -> list[dict[str, str]]:
        if self.continues_at is None:
            return [{"role": "user", "content": self.text}]
        return [
            {"role": "user", "content": self.text[: self.continues_at]},
            {"role": "assistant", "content": self.text[self.continues_at :]},
        ]

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True)
class ProblemView:
    """What rendering needs of a problem."""

    question: str
    choices: list[dict[str, str]] | None
    task: str
    answer_type: AnswerType

    @property
    def choice_order(self) -> list[str] | None:
        """The order a rendering shows the options in: the stored one (templates see `choices` as
        stored), recorded with each generation so a letter is read as the option shown under it."""
        return [c["label"] for c in self.choices] if self.choices else None


def _variables(problem: ProblemView) -> dict[str, Any]:
    return {
        "question": problem.question,
        "choices": problem.choices or [],
        "choices_text": choices_text(problem.choices),
        "task": problem.task,
        "answer_type": problem.answer_type.value,
        "answer_trigger": stage_two_trigger(problem.answer_type, [c["label"] for c in problem.choices or []]),
    }


class CompiledTemplate:
    """A stored template, compiled once for rendering many prompts."""

    def __init__(self, row: PromptTemplate) -> None:
        self.id, self.name, self.version, self.style = row.id, row.name, row.version, row.style
        self._first = _compile(row.text, f"{row.name} v{row.version}")
        self._second = _compile(row.answer_text, f"{row.name} v{row.version} (answer)") if row.answer_text else None

    @property
    def two_stage(self) -> bool:
        return self._second is not None

    def render(self, problem: ProblemView) -> Prompt:
        return Prompt(self._first.render(_variables(problem)))

    def render_answer_stage(self, problem: ProblemView, first: Prompt, rationale: str) -> Prompt:
        if self._second is None:
            raise CurationError(f"template {self.name} v{self.version} has a single stage")
        text = self._second.render({**_variables(problem), "prompt": first.text, "rationale": rationale})
        # The first prompt as the user's turn, the teacher's text and the trigger as its own.
        continues_at = len(first.text) if text.startswith(first.text) and len(text) > len(first.text) else None
        return Prompt(text, continues_at)


def _compile(text: str, name: str) -> jinja2.Template:
    try:
        return _ENVIRONMENT.from_string(text)
    except jinja2.TemplateSyntaxError as error:
        raise InputError(name, f"template syntax error on line {error.lineno}: {error.message}") from None


_SAMPLE = ProblemView(
    "Sam has 3 apples and buys 2 more. How many apples does Sam have?",
    [{"label": "A", "text": "5"}, {"label": "B", "text": "6"}],
    "sample",
    AnswerType.number,
)


def add_template(
    session: Session, *, name: str, style: TemplateStyle, text: str, answer_text: str | None = None
) -> PromptTemplate:
    """Store a template (a new version of `name` if its content is new), after a trial rendering."""
    if style is TemplateStyle.reference:
        raise CurationError("reference templates are written by `curation references`, not added as prompts")
    if style is TemplateStyle.student:
        raise CurationError("student templates are written by `curation eval`, not added as prompts")
    if style is TemplateStyle.zero_shot_cot and answer_text is None:
        raise CurationError("a zero-shot-CoT template needs its second stage (--answer-file)")
    row = PromptTemplate(name=name, version=0, style=style, text=text, answer_text=answer_text, content_hash="")
    compiled = CompiledTemplate(row)
    try:
        first = compiled.render(_SAMPLE)
        if compiled.two_stage:
            compiled.render_answer_stage(_SAMPLE, first, "3 + 2 = 5.")
    except jinja2.UndefinedError as error:
        raise InputError(name, f"template uses an unknown variable: {error.message}") from None
    return template_repo.ensure_template(session, name=name, style=style, text=text, answer_text=answer_text)


def ensure_built_in(session: Session, name: str) -> PromptTemplate:
    style, text, answer_text = BUILT_IN[name]
    return add_template(session, name=name, style=style, text=text, answer_text=answer_text)


def add_few_shot_from_ftcot(session: Session, path: Path, task: str) -> PromptTemplate:
    """Fine-tune-CoT's few-shot CoT prompt for `task` (few_shot_cot_prompts.json) as a template."""
    try:
        prompts = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(str(path), f"cannot read few-shot prompts: {error}") from None
    if task not in prompts:
        raise InputError(str(path), f"no few-shot prompt for {task!r}; it has {', '.join(sorted(prompts))}")
    entry = prompts[task]
    exemplars = entry["prompt"] if isinstance(entry, dict) else entry
    # The exemplars are data, not template code: kept verbatim inside a raw block.
    text = "{% raw %}" + exemplars.rstrip() + "{% endraw %}\nQ: {{ question }}{{ choices_text }}\nA:"
    return add_template(session, name=f"few-shot-cot-{task}", style=TemplateStyle.few_shot_cot, text=text)


def resolve_template(session: Session, name: str, version: int | None = None) -> PromptTemplate:
    """A stored template by name (newest version unless given). A built-in's current text is
    stored on first use, and as a new version when the code's text changed since (zero-shot-CoT's
    per-answer-type triggers), so a run asking for it by name gets the current one."""
    if name in BUILT_IN and version is None:
        ensure_built_in(session, name)
    query = select(PromptTemplate).where(PromptTemplate.name == name)
    query = (
        query.where(PromptTemplate.version == version) if version else query.order_by(PromptTemplate.version.desc())
    )
    row = session.execute(query.limit(1)).scalar_one_or_none()
    if row is not None and row.style is TemplateStyle.reference:
        raise CurationError(f"template {name!r} names where reference rationales come from; it is no prompt")
    if row is not None and row.style is TemplateStyle.student:
        raise CurationError(
            f"template {name!r} is a student's prompt format (an evaluation's); it is no teacher prompt"
        )
    if row is not None:
        return row
    known = ", ".join(sorted(set(BUILT_IN) | set(session.execute(select(PromptTemplate.name).distinct()).scalars())))
    raise NotFoundError(f"no template {name!r}{f' v{version}' if version else ''}; known: {known}")
