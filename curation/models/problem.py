from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKeyConstraint, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from curation.db.base import Base, CreatedAt, IdPk, IdType


class Problem(Base):
    """One question with its gold answer, as read from a benchmark file, the hub, or a generator.

    `split` is the split's name; the composite foreign key (task_id, split) keeps it pointing at a
    declared split while letting SQL users filter on `split = 'train'` without a join.
    `content_hash` fingerprints the normalized question text, so the same question found in two
    places (a GSM8K test item and its PAL copy) is recognised, which is what keeps evaluation
    problems out of training snapshots even when they were ingested under another task.
    """

    __tablename__ = "problem"
    __table_args__ = (
        UniqueConstraint("task_id", "split", "source_ref"),
        ForeignKeyConstraint(["task_id", "split"], ["split.task_id", "split.name"], ondelete="CASCADE"),
        Index(None, "content_hash"),
    )

    id: Mapped[IdPk]
    task_id: Mapped[int] = mapped_column(IdType)
    split: Mapped[str] = mapped_column(String(100))
    source_ref: Mapped[str] = mapped_column(String(255))
    question: Mapped[str] = mapped_column(Text)
    gold_answer_raw: Mapped[str] = mapped_column(Text)
    gold_answer: Mapped[str] = mapped_column(Text)
    choices: Mapped[list[Any] | None]
    reference_rationale: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any] | None]
    created_at: Mapped[CreatedAt]
