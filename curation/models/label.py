from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from curation.db.base import Base, CreatedAt, IdPk, IdType, str_enum


class Verdict(enum.StrEnum):
    correct = "correct"
    incorrect = "incorrect"
    unparseable = "unparseable"
    error = "error"


class Label(Base):
    """A verifier's judgement of a rationale. New rules mean a new verifier version and new rows:
    old labels stay, so a dataset built on v1 labels can still be explained after v2 exists."""

    __tablename__ = "label"
    __table_args__ = (UniqueConstraint("rationale_id", "verifier", "verifier_version"),)

    id: Mapped[IdPk]
    rationale_id: Mapped[int] = mapped_column(IdType, ForeignKey("rationale.id", ondelete="CASCADE"))
    execution_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("execution.id", ondelete="SET NULL"), index=True
    )
    verifier: Mapped[str] = mapped_column(String(100))
    verifier_version: Mapped[str] = mapped_column(String(50))
    verdict: Mapped[Verdict] = mapped_column(str_enum(Verdict, "verdict"))
    score: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any] | None]
    created_at: Mapped[CreatedAt]
