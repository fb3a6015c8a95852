"""A training run's claim on itself (TrainingRun.lease_holder): taken before the trainer starts,
renewed while it trains, given back when the run completes or fails.

Why: the training task runs for hours, longer than the Redis visibility timeout a deployment can
sensibly set, so the broker hands its message to a second worker while the first still trains;
a second `curation train --resume` or two workers given the same id do the same. Without a claim
both would train into the same run folder, each overwriting the other's checkpoints. With it the
second finds the run held and says so (`RunHeld`, which the Celery task turns into a retry a lease
later): by then the run is completed (it returns) or its holder died and the lease ran out (it
takes the run over and resumes from the last checkpoint).

The lease is renewed from a thread of its own, every quarter of its length, not from a Trainer
callback: one optimizer step, a checkpoint save or a validation pass may well take longer than a
lease, and a renewal must not wait for them. A Trainer callback (`LeaseGuard`) only looks, at
every step, whether the lease was lost (another process took the run over after this one could
not renew for a whole lease), and stops this trainer before it writes anything more.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from curation.db.base import utc_now
from curation.db.session import Database
from curation.repositories import training_leases
from workers.renewed_lease import RenewedLease, known_dead
from workers.task_contract import Deferred

log = logging.getLogger(__name__)


class RunHeld(Deferred):
    """Another process trains this run now (or took it over from this one)."""


class TrainingLease(RenewedLease):
    def __init__(self, db: Database, run_id: int, seconds: float) -> None:
        super().__init__(db, seconds)
        self.run_id = run_id
        self.what = f"training run {run_id}"

    def acquire(self, session: Session) -> bool:
        """Claim the run in the caller's transaction. False: the run is completed (nothing to do);
        RunHeld: another live process holds it (with how long until its claim runs out)."""
        if training_leases.claim(session, self.run_id, self.holder, self.seconds):
            self._claimed()
            return True
        other = training_leases.current(session, self.run_id)
        dead = other is not None and known_dead(other[0])
        if dead and other and training_leases.take_over(session, self.run_id, other[0], self.holder, self.seconds):
            log.info("training run %s: taken over from %s (its process is gone)", self.run_id, other[0])
            self._claimed()
            return True
        if other is None:
            return False  # not held and not claimable: completed
        retry_in = max(1.0, (other[1] - utc_now()).total_seconds())
        raise RunHeld(
            f"training run {self.run_id} is held by {other[0]} (its lease runs {retry_in:.0f} s more)", retry_in
        )

    def _renew(self, session: Session) -> bool:
        return training_leases.renew(session, self.run_id, self.holder, self.seconds)

    def lost_error(self) -> RunHeld:
        return RunHeld(f"training run {self.run_id} was taken over by another process", self.seconds)

    def release(self, session: Session) -> bool:
        """Give the run back in the caller's transaction; False if this process no longer held it."""
        return training_leases.release(session, self.run_id, self.holder)


def lease_guard(lease: TrainingLease) -> Any:
    """A TrainerCallback that stops training (raises RunHeld) at the first step after the lease was lost."""
    from transformers import TrainerCallback

    class LeaseGuard(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if lease.lost:
                raise lease.lost_error()

        on_save = on_step_end  # nor does it keep saving checkpoints into a folder another process owns

    return LeaseGuard()
