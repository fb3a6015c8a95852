"""The interface every teacher backend implements."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from curation.templates import Prompt


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0
    top_p: float | None = None
    max_tokens: int | None = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt and the samples wanted from it.

    `samples` are the sample indices to fill (a run's D samples of a problem, or the missing ones
    on a resume). A backend that can ask for several samples in one call does so; otherwise it asks
    once per sample, with seed + sample index as the seed so that each sample is reproducible.
    """

    key: Hashable
    prompt: Prompt
    samples: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None = None


@dataclass(frozen=True)
class GenerationResult:
    """What came back for a request: one completion per requested sample, in order, or an error
    once the backend's retries were used up. Token counts and latency cover all its calls."""

    request: GenerationRequest
    completions: list[Completion] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    attempts: int = 1
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


class Teacher(Protocol):
    """Backends yield results as they arrive, in any order, so callers store each one at once.

    Once `cancel` is set (from another thread: the caller can no longer store what comes back),
    a backend asks for nothing more, stops what is in flight where it can, and ends the iteration
    soon after; results it already holds may still be yielded.
    """

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        params: SamplingParams,
        cancel: threading.Event | None = None,
    ) -> Iterator[GenerationResult]: ...

    def close(self) -> None: ...
