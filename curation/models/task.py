from __future__ import annotations

import enum

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from curation.db.base import Base, CreatedAt, IdPk, IdType, str_enum


class AnswerType(enum.StrEnum):
    """How a task's gold answers are written, and so how answers are normalized and compared."""

    number = "number"
    multiple_choice = "multiple_choice"
    yes_no = "yes_no"
    text = "text"


class SplitPurpose(enum.StrEnum):
    """Whether a split may feed training. Problems from `eval` splits never enter a training snapshot."""

    train = "train"
    eval = "eval"


class Task(Base):
    """A benchmark (GSM8K, SVAMP, ...) or a user's own problem set."""

    __tablename__ = "task"

    id: Mapped[IdPk]
    name: Mapped[str] = mapped_column(String(100), unique=True)
    answer_type: Mapped[AnswerType] = mapped_column(str_enum(AnswerType, "answer_type"))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[CreatedAt]


class Split(Base):
    """A named part of a task (train, test, ...) and what it may be used for."""

    __tablename__ = "split"
    __table_args__ = (UniqueConstraint("task_id", "name"),)

    id: Mapped[IdPk]
    task_id: Mapped[int] = mapped_column(IdType, ForeignKey("task.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[SplitPurpose] = mapped_column(str_enum(SplitPurpose, "split_purpose"))
    created_at: Mapped[CreatedAt]
