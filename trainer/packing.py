"""Padding-free packing: a batch of prompt/completion examples becomes one row of tokens (or a few,
see "Rows of a token budget" below).

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

Rows of a token budget. With sdpa the block-diagonal mask is a dense row x row matrix, so the
attention of one row costs its length squared, whatever the blocks: a batch of long examples as
one row would cost (sum of lengths)^2. A batch whose tokens exceed `max_tokens_per_row` is
therefore split into several rows, each at most that long: first-fit decreasing (the longest
example first, into the first row it fits), which fills rows well, and the rows are padded to
the longest of them with a segment of their own (positions restarting, labels ignored), so the
padding attends only to itself. The batch stays `batch_size` examples, rather than a sampler
drawing examples up to a token budget: steps, epochs, the schedule, data order, resume and the
sharding over processes all keep meaning what the Trainer means by them, and the loss is the
same mean over the same completion tokens. The Trainer's tokens-seen count includes that
padding (it counts input ids); first-fit decreasing keeps it to a few tokens per extra row.
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


def rows_within(examples: Sequence[Tokenized], max_tokens: int) -> list[list[Tokenized]]:
    """The examples in rows of at most `max_tokens` tokens (first-fit decreasing; an example longer
    than that is a row of its own). One row when they all fit, in their order."""
    if sum(len(e) for e in examples) <= max_tokens:
        return [list(examples)]
    rows: list[list[Tokenized]] = []
    room: list[int] = []
    for example in sorted(examples, key=len, reverse=True):
        for index, left in enumerate(room):
            if len(example) <= left:
                rows[index].append(example)
                room[index] -= len(example)
                break
        else:
            rows.append([example])
            room.append(max_tokens - len(example))
    return rows


def pack_rows(examples: Sequence[Tokenized], max_tokens: int, pad_token_id: int = 0) -> dict[str, list[list[int]]]:
    """Rows of at most `max_tokens` (see the module's note), padded to the longest by a segment
    of its own: positions from 0, labels ignored."""
    rows = [pack(row) for row in rows_within(examples, max_tokens)]
    width = max(len(row["input_ids"][0]) for row in rows)
    batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids": []}
    for row in rows:
        gap = width - len(row["input_ids"][0])
        batch["input_ids"].append(row["input_ids"][0] + [pad_token_id] * gap)
        batch["labels"].append(row["labels"][0] + [IGNORE] * gap)
        batch["position_ids"].append(row["position_ids"][0] + list(range(gap)))
    return batch


class PackingCollator:
    """A `transformers.Trainer` data collator: each batch of features (`input_ids`, `labels`)
    becomes one packed row, or several of at most `max_tokens_per_row` tokens, with
    `use_cache=False` (see the module's note)."""

    def __init__(self, max_tokens_per_row: int | None = None, pad_token_id: int = 0) -> None:
        self.max_tokens_per_row, self.pad_token_id = max_tokens_per_row, pad_token_id

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        examples = [Tokenized(list(f["input_ids"]), list(f["labels"])) for f in features if len(f["input_ids"])]
        if self.max_tokens_per_row is None:
            packed = pack(examples)
        else:
            packed = pack_rows(examples, self.max_tokens_per_row, self.pad_token_id)
        batch: dict[str, Any] = {key: torch.tensor(value, dtype=torch.long) for key, value in packed.items()}
        batch["use_cache"] = False
        return batch
