"""How a student sees a problem and writes its answer: the one definition that exports, training
and evaluation share (a student evaluated on prompts other than those it was trained on is
measured on another task).

- The question as the student reads it: the stored question, stripped, with a multiple-choice
  problem's options verbalised as Fine-tune-CoT does (`` Answer choices: (A) shelf, (B) board.``,
  in the stored order).
- CoT (Fine-tune-CoT, Ho et al. 2023): prompt ``{question} ###``, completion
  `` {rationale} --> {answer} END`` (rationale and answer stripped, as their Formatter does).
- Programs (PaD, Zhu et al. 2024): input the question, target the program with its docstrings
  removed (PaD strips them before training). For a decoder-only student the prompt is the
  question and a newline, so that the program starts a line of its own.
- Repair (LEMA's correction format, An et al. 2023, with interpreter feedback; docs/refinement.md):
  the program prompt, then the faulty program, the feedback on it, and the instruction to find
  the wrong step, say why and give the corrected program; the completion is the corrected
  program alone (the corrections are verified programs, which carry no explanation).
- Chat (`messages`): the user turn is the question; the assistant's is the CoT completion
  without its framing (``{rationale} --> {answer}``) or the program.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from curation.models import RationaleKind

FTCOT_PROMPT_END = " ###"
FTCOT_ANSWER_MARK = " --> "
FTCOT_STOP = "END"
PAD_PROMPT_END = "\n"

Choice = dict[str, str]


def choices_text(choices: Sequence[Choice] | None) -> str:
    """Fine-tune-CoT's verbalisation of options, with a leading space (empty without options)."""
    if not choices:
        return ""
    return " Answer choices: " + ", ".join(f"({c['label']}) {c['text']}" for c in choices) + "."


def verbalised_question(question: str, choices: Sequence[Choice] | None = None) -> str:
    return (question.strip() + choices_text(choices)).strip()


def ftcot_prompt(question: str, choices: Sequence[Choice] | None = None) -> str:
    return verbalised_question(question, choices) + FTCOT_PROMPT_END


def ftcot_completion(rationale: str, answer: str) -> str:
    return f" {rationale.strip()}{FTCOT_ANSWER_MARK}{answer.strip()} {FTCOT_STOP}"


def without_docstrings(program: str) -> str:
    """The program with every docstring (module, class, function) removed, the rest of its text
    as written. A program that does not parse is returned as it is."""
    if '"' not in program and "'" not in program:
        return program  # no string literal, so no docstring (and no parse: exports call this per row)
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return program
    drop: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.body:
            first = node.body[0]
            is_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            if is_doc and isinstance(first.value.value, str) and len(node.body) > 1:  # type: ignore[attr-defined]
                drop.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    if not drop:
        return program
    lines = program.splitlines(keepends=True)
    return "".join(line for number, line in enumerate(lines, start=1) if number not in drop)


def pad_prompt(question: str, choices: Sequence[Choice] | None = None) -> str:
    return verbalised_question(question, choices) + PAD_PROMPT_END


def pad_completion(program: str) -> str:
    return without_docstrings(program).strip("\n") + "\n"


def student_prompt(kind: RationaleKind | str, question: str, choices: Sequence[Choice] | None = None) -> str:
    """The prompt a student gets for a problem: what it was trained on for this kind of rationale."""
    return pad_prompt(question, choices) if kind == RationaleKind.program else ftcot_prompt(question, choices)


def student_completion(kind: RationaleKind | str, body: str, answer: str) -> str:
    """The completion a student is trained to write."""
    return pad_completion(body) if kind == RationaleKind.program else ftcot_completion(body, answer)


def chat_messages(
    kind: RationaleKind | str, question: str, choices: Sequence[Choice] | None, body: str, answer: str
) -> list[dict[str, Any]]:
    assistant = (
        pad_completion(body) if kind == RationaleKind.program else f"{body.strip()}{FTCOT_ANSWER_MARK}{answer.strip()}"
    )
    return [
        {"role": "user", "content": verbalised_question(question, choices)},
        {"role": "assistant", "content": assistant},
    ]


REPAIR_FAULTY = "# Faulty program:\n"
REPAIR_FEEDBACK = "# Feedback: "
REPAIR_INSTRUCTION = "# Find the wrong step, say why, and give the corrected program.\n# Corrected program:\n"


def repair_prompt(question: str, choices: Sequence[Choice] | None, faulty: str, feedback: str) -> str:
    """The prompt of a repair: the student's program prompt, its faulty program, the interpreter's
    feedback on one line, and the instruction; the corrected program follows (`pad_completion`)."""
    program = without_docstrings(faulty).strip("\n")
    note = " ".join(feedback.split())
    return f"{pad_prompt(question, choices)}{REPAIR_FAULTY}{program}\n{REPAIR_FEEDBACK}{note}\n{REPAIR_INSTRUCTION}"
