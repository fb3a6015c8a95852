"""Several training processes (`torchrun --nproc_per_node N -m curation.cli.app train ...` or
`accelerate launch`): which one is the main process, and how it shares what it decided.

The main process (rank 0) alone writes to the database and the run folder's export; the others
train on their shard and wait for it where they need what it wrote. One process (no launcher):
every function here is a no-op, and torch is not even imported.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

T = TypeVar("T")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _state() -> Any:
    import torch
    from accelerate import PartialState

    # The same shared state the Trainer sets up later (TrainingArguments(use_cpu=...)): gloo on
    # CPU, nccl on GPUs.
    return PartialState(cpu=not torch.cuda.is_available())


def from_main(value: T) -> T:
    """The main process's `value`, in every process."""
    if world_size() == 1:
        return value
    from accelerate.utils import broadcast_object_list

    _state()
    shared: list[Any] = [value]
    broadcast_object_list(shared, from_process=0)
    return shared[0]  # type: ignore[no-any-return]


def wait_for_everyone() -> None:
    if world_size() > 1:
        _state().wait_for_everyone()
