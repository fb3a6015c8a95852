from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from curation.db.base import Base, CreatedAt, IdPk, IdType, str_enum


class TrainingStatus(enum.StrEnum):
    pending = "pending"
    running = "running"
    completed = "completed"
    failed = "failed"


class TrainingRun(Base):
    """Fine-tuning a base model on exactly one snapshot version, with the config that reproduces it."""

    __tablename__ = "training_run"

    id: Mapped[IdPk]
    snapshot_id: Mapped[int] = mapped_column(IdType, ForeignKey("snapshot.id"), index=True)
    base_model_id: Mapped[int] = mapped_column(IdType, ForeignKey("model.id"), index=True)
    output_model_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("model.id"))
    parent_run_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("training_run.id"))
    config: Mapped[dict[str, Any]]
    status: Mapped[TrainingStatus] = mapped_column(
        str_enum(TrainingStatus, "training_status"), default=TrainingStatus.pending
    )
    metrics: Mapped[dict[str, Any] | None]
    checkpoint_path: Mapped[str | None] = mapped_column(String(1000))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[CreatedAt]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Which process trains the run now, and until when unless it renews the claim (trainer/lease.py):
    # a second delivery of the task, or a second worker, never trains into the same run folder.
    lease_holder: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
