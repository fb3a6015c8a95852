from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from curation.db.base import Base, CreatedAt, IdPk, IdType, str_enum
from curation.models.training_run import TrainingStatus


class Evaluation(Base):
    """A model scored on a task split with one decoding method (greedy, beam, step-verified, ...).

    The student's outputs are rationales pointing here (origin `student`, one per problem and
    sample), labelled by the same verifiers as teacher output; the counts below are their summary:
    `correct + incorrect + unparseable + errors == problems` once it is complete, `accuracy` is
    `correct / problems`, and `executed_ok` (programs only) counts the programs that ran to a value.

    Each evaluation has its own synthesis run (`synthesis_run_id`: teacher = the student model,
    a `student` template for its prompt format, the task and split, params = the decoding) whose
    generations hold the raw outputs with their token counts and latency; the output rationales
    link to them. `metrics` holds what the decoding cost (student tokens, sandbox programs and
    batches, seconds), summed over the calls that generated its outputs.
    """

    __tablename__ = "evaluation"

    id: Mapped[IdPk]
    model_id: Mapped[int] = mapped_column(IdType, ForeignKey("model.id"), index=True)
    training_run_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("training_run.id"), index=True)
    task_id: Mapped[int] = mapped_column(IdType, ForeignKey("task.id"))
    split: Mapped[str] = mapped_column(String(100))
    decoding: Mapped[dict[str, Any] | None]
    synthesis_run_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("synthesis_run.id"), index=True)
    metrics: Mapped[dict[str, Any] | None]
    status: Mapped[TrainingStatus] = mapped_column(
        str_enum(TrainingStatus, "evaluation_status"), default=TrainingStatus.pending
    )
    problems: Mapped[int] = mapped_column(Integer, default=0)
    correct: Mapped[int] = mapped_column(Integer, default=0)
    incorrect: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    unparseable: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    executed_ok: Mapped[int | None] = mapped_column(Integer)
    accuracy: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[CreatedAt]
    finished_at: Mapped[datetime | None]
