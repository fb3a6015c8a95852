"""What every claim in the database has in common (a generation batch's, a training run's): who
holds it, and a thread that renews it while the holder works.

A holder is named machine/pid/nonce. On the machine that wrote it, a holder whose process is gone
is dead at once, so work redelivered after its worker was killed is taken over without waiting for
the lease to run out; elsewhere the lease's expiry is what tells.

While the holder works, a thread of the lease's own renews it every quarter of its length, whatever
else the holder is doing (a teacher call, an optimizer step, a checkpoint save may each take longer
than a lease): a renewal that cannot reach the database is tried again at the next tick, and only a
lease that another process took over, or that ran out unrenewed, is lost; `on_lost` is then told.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Self

from sqlalchemy.orm import Session

from curation.db.session import Database

log = logging.getLogger(__name__)


@cache
def this_machine() -> str:
    """This machine and process-id namespace: where a pid means the same process."""
    boot = pid_namespace = ""
    with contextlib.suppress(OSError):
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    with contextlib.suppress(OSError):
        pid_namespace = os.readlink("/proc/self/ns/pid").removeprefix("pid:[").rstrip("]")
    return f"{socket.gethostname()[:100]}~{boot}~{pid_namespace}"


def new_holder() -> str:
    """A name for a claim this process takes: machine/pid/nonce (see `known_dead`)."""
    return f"{this_machine()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"


def known_dead(holder: str) -> bool:
    """True only for a holder on this machine whose process is gone."""
    machine, _, rest = holder.partition("/")
    pid_text = rest.partition("/")[0]
    if machine != this_machine() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False  # another machine, or another thread of this process: alive as far as we know
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class RenewedLease:
    """A claim that a thread renews while the block of `kept()` runs. Subclasses say how a renewal
    is written (`_renew`) and what the claim is called in the log (`what`)."""

    what = "a lease"

    def __init__(self, db: Database, seconds: float) -> None:
        self.db, self.seconds = db, seconds
        self.holder = new_holder()
        self.lost = False
        self._renewed = 0.0

    def _renew(self, session: Session) -> bool:
        """Extend the claim in the caller's transaction; False: this holder no longer has it."""
        raise NotImplementedError

    def _claimed(self) -> None:
        self._renewed = time.monotonic()

    def renew_if_due(self) -> None:
        if self.lost or time.monotonic() - self._renewed < self.seconds / 4:
            return
        with self.db.transaction() as session:
            held = self._renew(session)
        self._renewed = time.monotonic()
        if not held:
            self.lost = True

    @contextlib.contextmanager
    def kept(self, on_lost: Callable[[], object] | None = None) -> Iterator[Self]:
        """Renew the lease from a thread of its own while the block runs."""
        stopping = threading.Event()
        thread = threading.Thread(target=self._keep, args=(stopping, on_lost), name=f"lease {self.what}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stopping.set()
            thread.join()

    def _keep(self, stopping: threading.Event, on_lost: Callable[[], object] | None) -> None:
        while not stopping.wait(self.seconds / 8):
            try:
                self.renew_if_due()
            except Exception as error:
                # The database is unreachable for now, or the driver failed in a way SQLAlchemy does not
                # wrap: the next tick tries again, and a lease unrenewed for a whole lease is lost.
                log.warning("could not renew %s: %s: %s", self.what, type(error).__name__, error)
                if time.monotonic() - self._renewed >= self.seconds:
                    self.lost = True  # ran out unrenewed: another process may hold it by now
            if self.lost:
                log.warning("lost %s", self.what)
                if on_lost is not None:
                    on_lost()
                return
