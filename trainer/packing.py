"""Padding-free packing: a batch of prompt/completion examples becomes one row of tokens.

The examples are concatenated into a single sequence whose `position_ids` restart at 0 at every
example, with no attention mask. transformers reads restarting positions as sequence boundaries
and builds a block-diagonal causal mask from them (masking_utils.find_packed_sequence_indices),
with `sdpa` as with flash-attention, so no token attends to another example and no compute goes
to padding.

One trap, found the hard way: the boundaries are read only when there is no cache. A model whose
config says `use_cache=True` (most released ones) builds a cache during a training forward pass
too, and then silently attends across examples, exactly as an all-ones mask would. Every packed
batch therefore carries `use_cache=False`.

Labels are -100 on prompt tokens (the loss is on the completion only) and on the first token of
every example, so the last token of one example is never asked to predict the next example.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IGNORE = -100


@dataclass(frozen=True)
class Example:
    """One training pair as the snapshot export writes it, with the problem it came from (the
    validation split is carved by problem)."""

    prompt: str
    completion: str
    problem_id: int | None = None


@dataclass(frozen=True)
class Tokenized:
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def completion_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def tokenize(tokenizer: Any, example: Example, max_length: int) -> Tokenized:
    """Prompt and completion tokenized apart, as the student meets them at inference (the prompt
    alone, then its own tokens), with the end-of-sequence token after the completion so that the
    student learns to stop. Too long: the completion is cut at `max_length` (the prompt kept)."""
    prompt_ids = list(tokenizer(example.prompt, add_special_tokens=True)["input_ids"])
    completion_ids = list(tokenizer(example.completion, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None:
        completion_ids.append(int(tokenizer.eos_token_id))
    input_ids = (prompt_ids + completion_ids)[:max_length]
    labels = ([IGNORE] * len(prompt_ids) + completion_ids)[:max_length]
    return Tokenized(input_ids, labels)


def pack(examples: Sequence[Tokenized]) -> dict[str, list[list[int]]]:
    """One row: the examples end to end, positions restarting per example, labels masked."""
    input_ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for example in examples:
        input_ids.extend(example.input_ids)
        labels.append(IGNORE)
        labels.extend(example.labels[1:])
        positions.extend(range(len(example.input_ids)))
    return {"input_ids": [input_ids], "labels": [labels], "position_ids": [positions]}


class PackingCollator:
    """A `transformers.Trainer` data collator: each batch of features (`input_ids`, `labels`)
    becomes one packed row, with `use_cache=False` (see the module's note)."""

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        packed = pack([Tokenized(list(f["input_ids"]), list(f["labels"])) for f in features if len(f["input_ids"])])
        batch: dict[str, Any] = {key: torch.tensor(value, dtype=torch.long) for key, value in packed.items()}
        batch["use_cache"] = False
        return batch
