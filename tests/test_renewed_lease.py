"""The renewal thread every lease shares (workers/renewed_lease.py): it outlives any failure of a
renewal, and a lease it could not renew for a whole lease is lost, so the holder stops."""

from __future__ import annotations

import threading
import time

from sqlalchemy.orm import Session

from curation.db.session import Database
from workers.renewed_lease import RenewedLease


class _Flaky(RenewedLease):
    what = "a test lease"

    def __init__(self, db: Database, seconds: float, error: Exception) -> None:
        super().__init__(db, seconds)
        self.error, self.calls = error, 0

    def _renew(self, session: Session) -> bool:
        self.calls += 1
        raise self.error


def test_a_renewal_that_fails_in_any_way_loses_the_lease_after_a_whole_lease(sqlite_db: Database) -> None:
    # Not a database error: a thread that died of it would leave `lost` False and the holder working on.
    lease = _Flaky(sqlite_db, seconds=0.4, error=RuntimeError("driver gone"))
    lease._claimed()
    told = threading.Event()
    with lease.kept(on_lost=told.set):
        assert told.wait(5.0)
    assert lease.lost and lease.calls >= 2  # it kept trying until the lease ran out


def test_a_lease_renewed_in_time_is_kept(sqlite_db: Database) -> None:
    class _Fine(RenewedLease):
        renewals = 0

        def _renew(self, session: Session) -> bool:
            self.renewals += 1
            return True

    lease = _Fine(sqlite_db, seconds=0.2)
    lease._claimed()
    with lease.kept():
        time.sleep(0.6)
    assert not lease.lost and lease.renewals >= 2
