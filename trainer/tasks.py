"""The Celery task that runs a training run on a GPU worker: `curation worker --queues training`.

Thin and idempotent like the others: it takes a training run id, and `execute_training_run`
leaves a completed run alone and resumes a crashed one from its last checkpoint.

Redelivery. A training run lasts hours, longer than the broker's visibility timeout
(CURATION_VISIBILITY_TIMEOUT, by default twice CURATION_TASK_TIME_LIMIT) that suits the other
tasks, so Redis hands the unacknowledged message to a second worker while the first still
trains (and a kill -9 of a worker hands it over too, at once or after the timeout). The run's
lease (trainer/lease.py) makes that harmless: the second delivery finds the run held, trains
nothing, and retries a lease later (CURATION_LEASE_SECONDS), for as long as the holder keeps
renewing. When it comes back the run is completed (it returns) or its holder died and stopped
renewing (it takes the run over and resumes from the last checkpoint). So the visibility
timeout need not exceed a run's length; it only bounds how soon a dead worker's run is picked up
again when no retry is pending.

Time limits. A task whose own limits are None gets the worker's (CURATION_TASK_TIME_LIMIT, one
hour by default, and a soft limit before it), which would stop a training run mid-way; this task
has its own, CURATION_TRAINING_TIME_LIMIT (a week by default).
"""

from __future__ import annotations

import random
from typing import Any

from curation.settings import get_settings
from workers.celery_app import app, runtime
from workers.queues import Queue

TRAIN = "curation.train"
_LIMIT = get_settings().training_time_limit


# max_retries=None on the task itself: passed to retry() instead, None means "the default" (3).
@app.task(bind=True, name=TRAIN, time_limit=_LIMIT, soft_time_limit=_LIMIT - 60, max_retries=None)  # type: ignore[untyped-decorator]
def train(self: Any, run_id: int) -> int:
    from trainer.lease import RunHeld
    from trainer.runs import execute_training_run

    try:
        return int(execute_training_run(runtime().db, run_id, progress=False).id)
    except RunHeld as held:
        # Held for as long as its holder lives and renews: no cap on the retries (each is one
        # message, sent a lease later, after this delivery is acknowledged).
        raise self.retry(exc=held, countdown=held.retry_in + random.uniform(0, 1)) from None


def send_training(run_id: int) -> None:
    app.send_task(TRAIN, args=[run_id], queue=Queue.training.value, routing_key=Queue.training.value)
