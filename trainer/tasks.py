"""The Celery task that runs a training run on a GPU worker: `curation worker --queues training`.

Thin and idempotent like the others: it takes a training run id, and `execute_training_run`
leaves a completed run alone and resumes a crashed one from its last checkpoint, so a redelivery
after a worker died continues the run rather than starting it over. A training run outlives the
default task time limit, so this task has none of its own; the broker's visibility timeout
(CURATION_VISIBILITY_TIMEOUT) must exceed a run's length, or the message is handed to a second
worker while the first still trains.
"""

from __future__ import annotations

from workers.celery_app import app, runtime
from workers.queues import Queue

TRAIN = "curation.train"


@app.task(name=TRAIN, time_limit=None, soft_time_limit=None)  # type: ignore[untyped-decorator]
def train(run_id: int) -> int:
    from trainer.runs import execute_training_run

    return int(execute_training_run(runtime().db, run_id, progress=False).id)


def send_training(run_id: int) -> None:
    app.send_task(TRAIN, args=[run_id], queue=Queue.training.value, routing_key=Queue.training.value)
