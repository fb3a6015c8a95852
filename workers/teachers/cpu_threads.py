"""How many CPU threads torch uses while it generates.

Decoding on a CPU is a long run of tiny operations (a few rows of a hidden state per step), for
which the OpenMP team's hand-offs cost more than the work they share, and a team of N threads on
N cores stalls whenever any other process takes a core: on a two-core machine with one other busy
process, SmolLM2-135M decoded a batch of 16 at 18 tokens/s with two threads and at 100 with one
(`python bench/generation_threads.py --busy 1`: 5.5x); on idle cores one thread ran 0.72x as fast
as two (`--busy 0`), the price of not stalling. Training's large matrix products do gain from
every core, so the limit holds only while generating and is lifted after.

With OpenMP, torch's intra-op thread count belongs to the thread that sets it (tested:
tests/test_generation_threads.py), so each generating thread caps and restores its own, and
threads that overlap cannot undo each other's cap.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from curation.settings import get_settings


@contextmanager
def generation_threads(device: str, threads: int | None = None) -> Iterator[None]:
    """torch's intra-op threads capped at `threads` (default: CURATION_GENERATION_THREADS) for the
    duration, on a CPU device only; 0 leaves torch's own choice."""
    limit = get_settings().generation_threads if threads is None else threads
    if limit <= 0 or not device.startswith("cpu"):
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(min(limit, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)
