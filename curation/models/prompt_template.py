from __future__ import annotations

import enum

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from curation.db.base import Base, CreatedAt, IdPk, str_enum


class TemplateStyle(enum.StrEnum):
    zero_shot_cot = "zero_shot_cot"
    few_shot_cot = "few_shot_cot"
    program = "program"
    # Not a prompt: the template of a reference run, whose rationales were written by people or a
    # problem generator (its text says where they come from). Never rendered for a teacher.
    reference = "reference"
    # Not a teacher prompt: the prompt format a student is evaluated in (curation/student_prompt.py),
    # the template of an evaluation's synthesis run. Never rendered for a teacher either.
    student = "student"


class PromptTemplate(Base):
    """An immutable prompt version. Editing a template means storing a new version.

    `text` renders the first (or only) request; `answer_text` is the second stage of zero-shot-CoT
    ("...Therefore, the answer is"), NULL for single-stage styles. `content_hash` covers style and
    both texts, so the same template imported twice is one row.
    """

    __tablename__ = "prompt_template"
    __table_args__ = (UniqueConstraint("name", "version"), UniqueConstraint("content_hash"))

    id: Mapped[IdPk]
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    style: Mapped[TemplateStyle] = mapped_column(str_enum(TemplateStyle, "template_style"))
    text: Mapped[str] = mapped_column(Text)
    answer_text: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[CreatedAt]
