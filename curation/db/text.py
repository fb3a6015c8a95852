"""Text as both databases can store it."""

from __future__ import annotations


def storable(text: str) -> str:
    """`text` with what a TEXT column cannot hold replaced: PostgreSQL refuses NUL characters, and a
    lone surrogate (which JSON and some model tokenizers can produce) has no UTF-8 encoding."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode()
    return text
