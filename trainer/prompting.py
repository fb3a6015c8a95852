"""The student's prompt for a problem, in the format it was trained on.

Interim: issue 11's `curation/student_prompt.py` is the one definition the snapshot export,
training and evaluation share; once it is on main this module goes and evaluation imports it.
The signature and the strings here are that module's (`{question} ###` for CoT, the question and
a newline for programs).
"""

from __future__ import annotations

from collections.abc import Sequence

from curation.models import RationaleKind
from curation.templates import choices_text


def student_prompt(kind: RationaleKind | str, question: str, choices: Sequence[dict[str, str]] | None = None) -> str:
    verbalised = (question.strip() + choices_text(list(choices) if choices else None)).strip()
    return verbalised + ("\n" if RationaleKind(kind) is RationaleKind.program else " ###")
