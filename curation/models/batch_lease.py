from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from curation.db.base import Base, IdType


class BatchLease(Base):
    """Which task is generating a batch of a run's problems right now, and until when.

    A generation task claims its batch before asking the teacher and renews the claim while it
    works, so a second delivery of the same batch (a redelivered message, a resume sent while the
    first is still running) waits instead of asking the teacher for the same samples again. A
    lease whose holder dies simply runs out. Rows exist only while work is under way.
    """

    __tablename__ = "batch_lease"

    synthesis_run_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("synthesis_run.id", ondelete="CASCADE"), primary_key=True
    )
    batch_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]
