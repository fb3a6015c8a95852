from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from curation.db.base import Base, CreatedAt, IdPk, IdType, str_enum


class SnapshotKind(enum.StrEnum):
    """What a snapshot is for: training (no problem of an evaluation split may enter), or
    evaluation (every problem must come from an evaluation split)."""

    training = "training"
    evaluation = "evaluation"


class Snapshot(Base):
    """A frozen, content-addressed selection of rationales: what a student is trained on.

    `NAME@version`. `content_sha256` hashes the canonical spec and the members' content hashes in
    their order (curation/snapshots/manifest.py says exactly what is covered), so rebuilding from
    the same spec over the same data gives the same hash on any database. A snapshot is written
    unsealed, its members added, then sealed with its manifest; from then on the database itself
    (triggers of migration 0007) refuses any change to its identity, manifest or members.
    """

    __tablename__ = "snapshot"
    __table_args__ = (UniqueConstraint("name", "version"), Index(None, "content_sha256"))

    id: Mapped[IdPk]
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[SnapshotKind] = mapped_column(
        str_enum(SnapshotKind, "snapshot_kind"), default=SnapshotKind.training, server_default="training"
    )
    spec: Mapped[dict[str, Any]]
    content_sha256: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(BigInteger)
    manifest: Mapped[dict[str, Any] | None]
    sealed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[CreatedAt]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class SnapshotMember(Base):
    """A rationale inside a snapshot, at its position in the export, with what it was chosen as.

    `label_id` is the label the selection read (its verdict is what the member was chosen for);
    `content_sha256` is the hash of the member's canonical record (question, choices, gold
    answer, kind, rationale text), one input of the snapshot's hash.
    """

    __tablename__ = "snapshot_member"
    __table_args__ = (UniqueConstraint("snapshot_id", "position"),)

    snapshot_id: Mapped[int] = mapped_column(IdType, ForeignKey("snapshot.id", ondelete="CASCADE"), primary_key=True)
    rationale_id: Mapped[int] = mapped_column(IdType, ForeignKey("rationale.id"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)
    problem_id: Mapped[int] = mapped_column(IdType, ForeignKey("problem.id"), index=True)
    label_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("label.id"))
    content_sha256: Mapped[str | None] = mapped_column(String(64))
