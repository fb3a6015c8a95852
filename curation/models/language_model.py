from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from curation.db.base import Base, CreatedAt, IdPk, str_enum


class ModelRole(enum.StrEnum):
    teacher = "teacher"
    student = "student"


class LanguageModel(Base):
    """A teacher or student model: where it is served from and exactly which weights.

    `revision` is '' rather than NULL when unknown, so that the unique key below holds (NULLs never
    collide in a unique constraint).
    """

    __tablename__ = "model"
    __table_args__ = (UniqueConstraint("role", "backend", "name", "revision"),)

    id: Mapped[IdPk]
    role: Mapped[ModelRole] = mapped_column(str_enum(ModelRole, "model_role"))
    backend: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(500))
    revision: Mapped[str] = mapped_column(String(200), default="")
    parameters: Mapped[dict[str, Any] | None]
    created_at: Mapped[CreatedAt]
