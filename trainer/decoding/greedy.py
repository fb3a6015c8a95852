"""Greedy, batched, left-padded generation from a local student: the local transformers backend
the teachers use (workers/teachers/local.py), asked for plain continuations at temperature 0."""

from __future__ import annotations

from collections.abc import Sequence

from curation.templates import Prompt
from workers.teachers.base import GenerationRequest, SamplingParams
from workers.teachers.local import LocalTransformersTeacher


def greedy(
    model_path: str,
    prompts: Sequence[str],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 256,
    stop: tuple[str, ...] = (),
    device: str = "auto",
) -> list[str]:
    """The completion of every prompt, in order (a batch that failed raises)."""
    teacher = LocalTransformersTeacher(model_path, device=device, batch_size=batch_size, chat=False)
    requests = [GenerationRequest(key=i, prompt=Prompt(text)) for i, text in enumerate(prompts)]
    texts: dict[int, str] = {}
    for result in teacher.generate(requests, SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop=stop)):
        if result.failed or not result.completions:
            raise RuntimeError(f"generation failed for prompt {result.request.key}: {result.error}")
        texts[int(result.request.key)] = result.completions[0].text  # type: ignore[call-overload]
    return [texts[i] for i in range(len(prompts))]
