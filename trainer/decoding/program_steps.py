"""What a step of a program is, and when a program is finished. Pure functions over source text.

A step is one line. After each line the whole program so far is checked with
`codeop.compile_command(source, symbol="exec")`:
- a SyntaxError (IndentationError included) makes the beam invalid: it is pruned;
- None means the last statement is still open (a `for` header with no body yet, an unclosed
  bracket, an `if` waiting for its `else` body): the beam keeps growing, and is neither scored nor
  executed until the statement closes;
- a code object means the program so far is complete: the line is a completed step.
Blank and comment-only lines are not steps: they change nothing that could be scored.

A program is finished when it ends with a complete top-level `def solution():` whose last line is a
`return` at the function's own body indentation (PaD's format), or when the model emits EOS.
"""

from __future__ import annotations

import codeop
import enum
import warnings


class StepState(enum.StrEnum):
    complete = "complete"
    incomplete = "incomplete"
    invalid = "invalid"
    blank = "blank"


def step_state(source: str, line: str) -> StepState:
    """The state of `source` (the program so far, ending with `line`)."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return StepState.blank
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings (`x is 1`) are the program's business
            compiled = codeop.compile_command(source, symbol="exec")
    except (SyntaxError, ValueError, OverflowError):  # ValueError: NUL bytes; OverflowError: huge literals
        return StepState.invalid
    return StepState.incomplete if compiled is None else StepState.complete


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def returns_from_solution(lines: list[str]) -> bool:
    """The last non-blank line is a `return` at the body level of a top-level `def solution(`."""
    code = [line for line in lines if line.strip() and not line.strip().startswith("#")]
    if not code or (not code[-1].lstrip().startswith(("return ", "return(")) and code[-1].strip() != "return"):
        return False
    header = None
    for i in range(len(code) - 1, -1, -1):
        if _indent(code[i]) == 0:
            header = i
            break
    if header is None or not code[header].startswith("def solution(") or header + 1 >= len(code):
        return False
    body_indent = _indent(code[header + 1])
    return body_indent > 0 and _indent(code[-1]) == body_indent


def closes(source: str) -> bool:
    """Whether the program as it stands compiles once it ends (at EOS the open statement must close)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(source, "<program>", "exec")
    except (SyntaxError, ValueError, OverflowError):
        return False
    return True
