"""A deterministic teacher for orchestration tests: answers by problem, fails or crashes on cue,
and counts every call so tests can assert that no stored generation is ever asked for again."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from workers.teachers.base import Completion, GenerationRequest, GenerationResult, SamplingParams


class TeacherCrash(RuntimeError):
    """Stands for the process dying mid-run (the exception aborts the task like a kill would)."""


class ScriptedTeacher:
    def __init__(
        self,
        reply: Callable[[GenerationRequest, int], str],
        *,
        fail_keys: set[object] | None = None,
        crash_after: int | None = None,
    ) -> None:
        self.reply = reply
        self.fail_keys = fail_keys or set()
        self.crash_after = crash_after
        self.calls: Counter[tuple[object, int]] = Counter()  # (request key, sample) -> times asked
        self.answered = 0

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        params: SamplingParams,
        cancel: threading.Event | None = None,
    ) -> Iterator[GenerationResult]:
        for request in requests:
            if cancel is not None and cancel.is_set():
                return
            if self.crash_after is not None and self.answered >= self.crash_after:
                raise TeacherCrash(f"crashed after {self.answered} answers")
            for sample in request.samples:
                self.calls[(request.key, sample)] += 1
            if request.key in self.fail_keys:
                yield GenerationResult(request, error="HTTP 500 (scripted)", attempts=5)
            else:
                texts = [self.reply(request, sample) for sample in request.samples]
                yield GenerationResult(request, [Completion(t, "stop") for t in texts], 12, 34, 1.5)
            self.answered += 1

    def close(self) -> None:
        pass
