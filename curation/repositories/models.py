"""Teacher and student models."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from curation.db.dialect import insert_ignoring_conflicts
from curation.models import LanguageModel, ModelRole


def ensure_model(
    session: Session,
    *,
    role: ModelRole,
    backend: str,
    name: str,
    revision: str = "",
    parameters: dict[str, Any] | None = None,
) -> LanguageModel:
    session.execute(
        insert_ignoring_conflicts(session, LanguageModel.__table__, ["role", "backend", "name", "revision"]),  # type: ignore[arg-type]
        {
            "role": role.value,
            "backend": backend,
            "name": name,
            "revision": revision,
            "parameters": parameters,
        },
    )
    return session.execute(
        select(LanguageModel).where(
            LanguageModel.role == role,
            LanguageModel.backend == backend,
            LanguageModel.name == name,
            LanguageModel.revision == revision,
        )
    ).scalar_one()
