"""What the interpreter says about a program: the feedback a repair is built from.

Two uses, one wording. A training repair example (`curation refine`) may say that a program
returned a wrong value: the gold answer decided that, but the feedback never names the gold
answer, so the prompt a student learns from is one it could see at evaluation time. At
evaluation time (`--repair-rounds`) a repair fires only on what the interpreter sees without the
gold answer (`reachable`): an error, a timeout, a syntax error, or no value of the answer type.
"""

from __future__ import annotations

from curation.answers.extract import answer_from_program_value
from curation.models import AnswerType, ExecutionStatus

MESSAGE_CHARS = 300

_STATUS_TEXT = {
    ExecutionStatus.timeout: "Timeout: the program did not finish within the time limit",
    ExecutionStatus.memory: "MemoryError: the program ran out of memory",
    ExecutionStatus.killed: "Killed: the program was stopped by the sandbox",
}


def _short(text: str | None) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= MESSAGE_CHARS else flat[: MESSAGE_CHARS - 3] + "..."


def has_value(value: str | None, answer_type: AnswerType, choices: list[dict[str, str]] | None = None) -> bool:
    return answer_from_program_value(value, answer_type, choices) is not None


def reachable(
    status: ExecutionStatus | str | None,
    value: str | None,
    answer_type: AnswerType,
    choices: list[dict[str, str]] | None = None,
) -> bool:
    """Whether an execution shows a failure without the gold answer: it did not finish with a
    value of the answer type. A program that never ran (no execution) is not a failure seen."""
    if status is None:
        return False
    if ExecutionStatus(status) is not ExecutionStatus.ok:
        return True
    return not has_value(value, answer_type, choices)


def execution_feedback(
    status: ExecutionStatus | str,
    value: str | None,
    error_type: str | None,
    error_message: str | None,
    answer_type: AnswerType,
    *,
    wrong_value: bool = False,
    choices: list[dict[str, str]] | None = None,
) -> str:
    """One line: the error type and message, or what the program returned (and, for a training
    example whose value was judged wrong, that it is wrong; never the gold answer)."""
    status = ExecutionStatus(status)
    if status in _STATUS_TEXT:
        return _STATUS_TEXT[status]
    if status is not ExecutionStatus.ok:
        kind = error_type or ("SyntaxError" if status is ExecutionStatus.syntax else "Error")
        message = _short(error_message)
        return f"{kind}: {message}" if message else kind
    if value is None:
        return "the program returned no value"
    if not has_value(value, answer_type, choices):
        return f"the program returned {_short(value)}, which is not a {answer_type.value} answer"
    if wrong_value:
        return f"the program returned {_short(value)}, which is wrong"
    return f"the program returned {_short(value)}"
