from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from curation.db.base import Base, CreatedAt, IdPk, IdType, str_enum


class RunStatus(enum.StrEnum):
    pending = "pending"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


class SynthesisRun(Base):
    """One request to a teacher: which problems, which prompt, how many samples, how hot.

    Imported teacher outputs are runs too (`source` says where they came from), so published data
    is curated with the same views and verifiers as fresh generations. `params` holds what else
    shapes the run (stop sequences, batch size, sandbox limits, verifier version). The counters are
    kept by the tasks that do the work, in the same transactions, so progress is one row away.
    """

    __tablename__ = "synthesis_run"

    id: Mapped[IdPk]
    name: Mapped[str | None] = mapped_column(String(200))
    teacher_id: Mapped[int] = mapped_column(IdType, ForeignKey("model.id"), index=True)
    template_id: Mapped[int] = mapped_column(IdType, ForeignKey("prompt_template.id"), index=True)
    task_id: Mapped[int] = mapped_column(IdType, ForeignKey("task.id"), index=True)
    split: Mapped[str | None] = mapped_column(String(100))
    selection: Mapped[dict[str, Any] | None]
    samples_per_problem: Mapped[int] = mapped_column(Integer, default=1)
    temperature: Mapped[float] = mapped_column(Float, default=0.0)
    top_p: Mapped[float | None] = mapped_column(Float)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(String(1000))
    params: Mapped[dict[str, Any] | None]
    status: Mapped[RunStatus] = mapped_column(str_enum(RunStatus, "run_status"), default=RunStatus.pending)
    problems_total: Mapped[int] = mapped_column(Integer, default=0)
    generations_done: Mapped[int] = mapped_column(Integer, default=0)
    generations_failed: Mapped[int] = mapped_column(Integer, default=0)
    rationales_labelled: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[CreatedAt]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
