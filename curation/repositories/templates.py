"""Prompt templates: immutable, content-addressed versions."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from curation.models import PromptTemplate, TemplateStyle


def template_hash(style: TemplateStyle, text: str, answer_text: str | None) -> str:
    return hashlib.sha256(json.dumps([style.value, text, answer_text]).encode()).hexdigest()


def get_template_by_hash(session: Session, content_hash: str) -> PromptTemplate | None:
    return session.execute(
        select(PromptTemplate).where(PromptTemplate.content_hash == content_hash)
    ).scalar_one_or_none()


def ensure_template(
    session: Session, *, name: str, style: TemplateStyle, text: str, answer_text: str | None = None
) -> PromptTemplate:
    """The template with exactly this content, stored as the next version of `name` if new.

    Identical content is one row whatever name it was offered under: a template is its text.
    """
    content_hash = template_hash(style, text, answer_text)
    for _attempt in range(5):
        existing = get_template_by_hash(session, content_hash)
        if existing is not None:
            return existing
        latest = session.execute(
            select(func.max(PromptTemplate.version)).where(PromptTemplate.name == name)
        ).scalar_one()
        template = PromptTemplate(
            name=name,
            version=(latest or 0) + 1,
            style=style,
            text=text,
            answer_text=answer_text,
            content_hash=content_hash,
        )
        try:
            with session.begin_nested():  # a concurrent writer may have taken this version number
                session.add(template)
            return template
        except IntegrityError:
            continue
    raise RuntimeError(f"could not store a new version of template {name!r} after 5 attempts")
