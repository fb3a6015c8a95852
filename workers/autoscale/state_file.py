"""What a local autoscaler leaves for the next one: its policy states and the workers it started,
in a file it holds locked while it runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from workers.autoscale.policy import QueueState
from workers.autoscale.pool import ManagedWorker

STATE_VERSION = 1


def load_state(path: Path) -> tuple[dict[str, QueueState], list[ManagedWorker]]:
    """The policy states and the workers a previous run left behind (none if there is no file)."""
    if not path.exists():
        return {}, []
    data = json.loads(path.read_text())
    if data.get("version") != STATE_VERSION:
        raise ValueError(f"{path}: unknown autoscaler state version {data.get('version')!r}")
    states = {queue: QueueState.from_dict(values) for queue, values in data.get("queues", {}).items()}
    workers = [ManagedWorker.from_record(record) for record in data.get("workers", [])]
    return states, workers


def save_state(path: Path, states: Mapping[str, QueueState], workers: Iterable[ManagedWorker]) -> None:
    """Write atomically: a crash mid-write must not lose the record of which processes are ours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "version": STATE_VERSION,
        "queues": {queue: state.as_dict() for queue, state in sorted(states.items())},
        "workers": [worker.as_record() for worker in workers],
    }
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=1) + "\n")
    partial.replace(path)


class AutoscalerBusy(RuntimeError):
    """Another autoscaler holds the state file's lock."""


@contextlib.contextmanager
def state_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock next to the state file: two autoscalers would fight over the workers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AutoscalerBusy(f"another autoscaler is using {path}") from None
        yield
