from __future__ import annotations

import enum

from sqlalchemy import ForeignKey, Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from curation.db.base import Base, CreatedAt, IdPk, IdType, str_enum


class RationaleKind(enum.StrEnum):
    cot = "cot"
    program = "program"


class RationaleOrigin(enum.StrEnum):
    teacher = "teacher"
    reference = "reference"  # written by people (GSM8K's solutions) or a problem generator
    student = "student"
    refinement = "refinement"


class Rationale(Base):
    """A piece of reasoning (CoT text or a program) and where it came from.

    Teacher rationales point at their generation (one each), and so do reference rationales
    (a reference run's generations hold the source text they were derived from). Student outputs point at the
    evaluation that produced them. A refinement points at the failed rationale it repairs
    (`parent_id`) and keeps the interpreter feedback it was given (`feedback`): following
    parent_id gives the whole lineage (see the rationale_lineage view), and `refinement_round`
    says which round made it (the refinement_step view, docs/refinement.md).
    `answer` is the extracted final answer (for programs, the value the program returned).
    """

    __tablename__ = "rationale"
    # A student's output per (evaluation, problem, sample): a rerun adds only what is missing.
    __table_args__ = (Index(None, "evaluation_id", "problem_id", "sample_index", unique=True),)

    id: Mapped[IdPk]
    problem_id: Mapped[int] = mapped_column(IdType, ForeignKey("problem.id"), index=True)
    generation_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("generation.id", ondelete="CASCADE"), unique=True
    )
    parent_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("rationale.id"), index=True)
    evaluation_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("evaluation.id", ondelete="CASCADE"), index=True
    )
    model_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("model.id"), index=True)
    sample_index: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[RationaleKind] = mapped_column(str_enum(RationaleKind, "rationale_kind"))
    origin: Mapped[RationaleOrigin] = mapped_column(str_enum(RationaleOrigin, "rationale_origin"))
    body: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    feedback: Mapped[str | None] = mapped_column(Text)
    # 1 for the repair of a student's output, k+1 for the repair of a round-k repair; NULL for
    # everything that is not a refinement.
    refinement_round: Mapped[int | None] = mapped_column(Integer, index=True)
    created_at: Mapped[CreatedAt]
