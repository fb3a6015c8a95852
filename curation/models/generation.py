from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from curation.db.base import Base, CreatedAt, IdPk, IdType, str_enum


class GenerationStatus(enum.StrEnum):
    ok = "ok"
    failed = "failed"


class Generation(Base):
    """A raw teacher output, stored the moment it arrives, under (run, problem, sample_index).

    The unique key is what makes a teacher call pay-once: a resumed or re-delivered job first
    looks here and asks the teacher only for the keys that are missing. The rendered prompt is
    not stored (it is the template applied to the problem); `prompt_hash` pins exactly which text
    was sent. `answer_output` is the second completion of two-stage zero-shot-CoT.

    `choice_order` is the order in which the prompt showed a multiple-choice problem's options:
    the stored labels (problem.choices), the one shown as (A) first, then (B), ... A letter the
    teacher answers is the option at that place (curation/answers/choices.py). NULL where the
    problem has no choices, and for generations stored before it was recorded (read as the stored
    order, which is what our own templates show).
    """

    __tablename__ = "generation"
    __table_args__ = (UniqueConstraint("synthesis_run_id", "problem_id", "sample_index"),)

    id: Mapped[IdPk]
    synthesis_run_id: Mapped[int] = mapped_column(IdType, ForeignKey("synthesis_run.id", ondelete="CASCADE"))
    problem_id: Mapped[int] = mapped_column(IdType, ForeignKey("problem.id"), index=True)
    sample_index: Mapped[int] = mapped_column(Integer)
    status: Mapped[GenerationStatus] = mapped_column(
        str_enum(GenerationStatus, "generation_status"), default=GenerationStatus.ok
    )
    prompt_hash: Mapped[str | None] = mapped_column(String(64))
    output: Mapped[str | None] = mapped_column(Text)
    answer_output: Mapped[str | None] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(50))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[str | None] = mapped_column(Text)
    choice_order: Mapped[list[Any] | None]
    meta: Mapped[dict[str, Any] | None]
    created_at: Mapped[CreatedAt]
