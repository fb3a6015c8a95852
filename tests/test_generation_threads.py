"""torch's thread count while generating on a CPU (workers/teachers/cpu_threads.py): each
generating thread caps its own count and restores it, and overlapping threads cannot undo each
other's cap (with OpenMP the count belongs to the thread that sets it)."""

from __future__ import annotations

import threading

import pytest

from workers.teachers.cpu_threads import generation_threads

torch = pytest.importorskip("torch")


def test_overlapping_generations_restore_the_count_once_the_last_ends() -> None:
    before = torch.get_num_threads()
    if before < 2:
        torch.set_num_threads(2)
    start = torch.get_num_threads()
    first_in, second_out = threading.Event(), threading.Event()
    seen: list[int] = []
    waited: list[bool] = []

    def first() -> None:
        with generation_threads("cpu", 1):
            first_in.set()
            waited.append(second_out.wait(60.0))
            seen.append(torch.get_num_threads())  # the other ended first: still capped for this one

    worker = threading.Thread(target=first)
    worker.start()
    assert first_in.wait(60.0), "the first generation never started"
    with generation_threads("cpu", 1):
        seen.append(torch.get_num_threads())
    second_out.set()
    worker.join()
    assert waited == [True], "the first generation did not see the second end"
    assert seen == [1, 1] and torch.get_num_threads() == start
    with generation_threads("cuda:0", 1):  # only a CPU is capped
        assert torch.get_num_threads() == start
    torch.set_num_threads(before)
