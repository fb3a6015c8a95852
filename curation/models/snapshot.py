from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from curation.db.base import Base, CreatedAt, IdPk, IdType


class Snapshot(Base):
    """A frozen, content-addressed selection of rationales: what a student is trained on.

    `content_sha256` hashes the exported rows in order together with the spec, so rebuilding from
    the same spec over the same data gives the same hash.
    """

    __tablename__ = "snapshot"
    __table_args__ = (UniqueConstraint("name", "version"), Index(None, "content_sha256"))

    id: Mapped[IdPk]
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]]
    export_format: Mapped[str] = mapped_column(String(50))
    content_sha256: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[CreatedAt]


class SnapshotMember(Base):
    """A rationale inside a snapshot, at its position in the export."""

    __tablename__ = "snapshot_member"
    __table_args__ = (UniqueConstraint("snapshot_id", "position"),)

    snapshot_id: Mapped[int] = mapped_column(IdType, ForeignKey("snapshot.id", ondelete="CASCADE"), primary_key=True)
    rationale_id: Mapped[int] = mapped_column(IdType, ForeignKey("rationale.id"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)
