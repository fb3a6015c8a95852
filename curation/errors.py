"""Errors a user can act on. Each names the record (file and line, or id) it is about."""

from __future__ import annotations

from typing import NamedTuple


def shortened(text: str, limit: int = 60) -> str:
    """Text for an error message, cut to `limit`: an id, an exception's text or a model's output
    may quote a whole, huge, record."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def quoted(text: str, limit: int = 60) -> str:
    """`text` quoted for an error message, cut as `shortened` cuts it, with its length when cut."""
    return repr(text) if len(text) <= limit else f"{shortened(text, limit)!r} ({len(text):,} characters)"


def first_line(error: BaseException) -> str:
    """The first line of an error's message; for a SQLAlchemy error, of the driver's (its `orig`),
    which says what the database said without the statement and parameters."""
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class CurationError(Exception):
    """Base class: the CLI prints these without a traceback."""


class SourceLocation(NamedTuple):
    """Where a record came from: a file and a line (JSONL, CSV) or record number (JSON, XML).

    A NamedTuple because ingestion makes one per record (a frozen dataclass costs several times more).
    """

    source: str
    line: int | None = None
    record: int | None = None
    record_id: str | None = None

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
        elif self.record is not None:
            where += f" record {self.record}"
        if self.record_id is not None:
            where += f" (id {self.record_id})"
        return where


class InputError(CurationError):
    """A record that cannot be read: malformed, missing a field, or of the wrong type."""

    def __init__(self, location: SourceLocation | str, message: str) -> None:
        self.location = location
        self.message = message
        super().__init__(f"{location}: {message}")


class ConflictError(CurationError):
    """Input that contradicts what the database already holds."""


class NotFoundError(CurationError):
    """A referenced row (task, run, model, ...) does not exist."""
