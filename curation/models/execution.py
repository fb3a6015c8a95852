from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from curation.db.base import Base, CreatedAt, IdPk, IdType, str_enum


class ExecutionStatus(enum.StrEnum):
    ok = "ok"
    error = "error"
    timeout = "timeout"
    memory = "memory"
    killed = "killed"
    syntax = "syntax"


class Execution(Base):
    """One sandboxed run of a program rationale, under the limits recorded with it.

    Unique per (rationale, limits_hash): running the same program under the same limits twice is
    the same fact; running it under new limits is a new one. `value` is the program's answer as
    text and `value_type` the Python type it had; stdout and stderr keep their first bytes, and
    `output_truncated` says whether the program wrote more.
    """

    __tablename__ = "execution"
    __table_args__ = (UniqueConstraint("rationale_id", "limits_hash"),)

    id: Mapped[IdPk]
    rationale_id: Mapped[int] = mapped_column(IdType, ForeignKey("rationale.id", ondelete="CASCADE"))
    status: Mapped[ExecutionStatus] = mapped_column(str_enum(ExecutionStatus, "execution_status"))
    value: Mapped[str | None] = mapped_column(Text)
    value_type: Mapped[str | None] = mapped_column(String(100))
    error_type: Mapped[str | None] = mapped_column(String(200))
    error_message: Mapped[str | None] = mapped_column(Text)
    stdout: Mapped[str | None] = mapped_column(Text)
    stderr: Mapped[str | None] = mapped_column(Text)
    output_truncated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    duration_ms: Mapped[float | None] = mapped_column(Float)
    limits: Mapped[dict[str, Any] | None]
    limits_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[CreatedAt]
