"""From a raw teacher output to the rationale it contains."""

from __future__ import annotations

import re

from curation.answers.triggers import last_trigger
from curation.models import RationaleKind, TemplateStyle

# ```python, ```py, ```python3, ```Python3 (any case), or a bare fence.
_FENCE = re.compile(r"```(?:python3?|py3?)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
# Few-shot completions often run on into a made-up next exemplar.
_NEXT_EXEMPLAR = re.compile(r"\n\s*(?:Q|Question):", re.IGNORECASE)
# In a program, only at the start of a line: indented, it may be a docstring or a comment.
_NEXT_EXEMPLAR_AFTER_CODE = re.compile(r"\n(?:Q|Question):", re.IGNORECASE)


def kind_for(style: TemplateStyle) -> RationaleKind:
    return RationaleKind.program if style is TemplateStyle.program else RationaleKind.cot


def rationale_body(output: str, kind: RationaleKind) -> str:
    """Programs: the first fenced code block if there is one, else the output up to any invented
    next question at the start of a line. CoT text: the output up to any invented next question,
    and, when a stage-2 trigger follows that question (a single completion holding the rationale
    and the stage-2 answer, as Kojima et al.'s logs print them) at the start of a line, that
    trigger and its answer too: the answer was asked for the real question, however the rationale
    ran on."""
    if kind is RationaleKind.program:
        fenced = _FENCE.search(output)
        if fenced:
            return fenced.group(1).strip("\n")
        return _NEXT_EXEMPLAR_AFTER_CODE.split(output, maxsplit=1)[0].strip("\n")
    cut = _NEXT_EXEMPLAR.search(output)
    if cut is None:
        return output.strip()
    head = output[: cut.start()].strip()
    tail = output[cut.end() :]
    trigger = last_trigger(tail)
    if trigger is None or tail[: trigger.start()].rstrip(" \t")[-1:] not in ("\n", ""):
        return head  # only a trigger opening a line is the harness's: one mid-line is the invented text's
    stage_two = output[cut.end() + trigger.start() :].strip()
    return f"{head}\n{stage_two}" if head else stage_two
