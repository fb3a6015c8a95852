"""From a raw teacher output to the rationale it contains."""

from __future__ import annotations

import re

from curation.models import RationaleKind, TemplateStyle

_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
# Few-shot completions often run on into a made-up next exemplar.
_NEXT_EXEMPLAR = re.compile(r"\n\s*(?:Q|Question):", re.IGNORECASE)
# In a program, only at the start of a line: indented, it may be a docstring or a comment.
_NEXT_EXEMPLAR_AFTER_CODE = re.compile(r"\n(?:Q|Question):", re.IGNORECASE)


def kind_for(style: TemplateStyle) -> RationaleKind:
    return RationaleKind.program if style is TemplateStyle.program else RationaleKind.cot


def rationale_body(output: str, kind: RationaleKind) -> str:
    """Programs: the first fenced code block if there is one, else the output up to any invented
    next question at the start of a line. CoT text: the output up to any invented next question."""
    if kind is RationaleKind.program:
        fenced = _FENCE.search(output)
        if fenced:
            return fenced.group(1).strip("\n")
        return _NEXT_EXEMPLAR_AFTER_CODE.split(output, maxsplit=1)[0].strip("\n")
    return _NEXT_EXEMPLAR.split(output, maxsplit=1)[0].strip()
