"""Padding-free packing gives every example the loss it has alone (within 1e-4), in one row or in
rows of a token budget, and the two ways of getting it wrong do not: an all-ones attention mask,
and a model config that keeps its cache."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from curation.errors import CurationError
from tests.support.tiny_model import tiny_llama_config
from trainer.config import TrainConfig
from trainer.packing import IGNORE, PackingCollator, Tokenized, pack, rows_within


def _examples() -> list[Tokenized]:
    generator = torch.Generator().manual_seed(0)
    examples = []
    for prompt_length, completion_length in [(5, 9), (12, 4), (3, 17), (8, 8)]:
        ids = torch.randint(10, 500, (prompt_length + completion_length,), generator=generator).tolist()
        examples.append(Tokenized(ids, [IGNORE] * prompt_length + ids[prompt_length:]))
    return examples


def _model() -> Any:
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model: Any = LlamaForCausalLM(tiny_llama_config(512))
    return model.eval()


def _per_example_loss(model: Any, examples: list[Tokenized]) -> float:
    """Each example alone, unpadded: the mean token loss over all completion tokens."""
    total, count = 0.0, 0
    with torch.no_grad():
        for example in examples:
            logits = model(input_ids=torch.tensor([example.input_ids])).logits[0, :-1]
            targets = torch.tensor(example.labels[1:])
            total += float(torch.nn.functional.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="sum"))
            count += int((targets != IGNORE).sum())
    return total / count


def test_pack_restarts_positions_and_masks_each_examples_first_token() -> None:
    a, b = Tokenized([1, 2, 3], [IGNORE, 2, 3]), Tokenized([4, 5], [4, 5])
    packed = pack([a, b])
    assert packed["input_ids"] == [[1, 2, 3, 4, 5]]
    assert packed["position_ids"] == [[0, 1, 2, 0, 1]]
    assert packed["labels"] == [[IGNORE, 2, 3, IGNORE, 5]]


def test_packed_loss_equals_per_example_loss() -> None:
    model, examples = _model(), _examples()
    expected = _per_example_loss(model, examples)
    batch = PackingCollator()([{"input_ids": e.input_ids, "labels": e.labels} for e in examples])
    assert "attention_mask" not in batch and batch["use_cache"] is False
    with torch.no_grad():
        packed = float(model(**batch).loss)
    assert packed == pytest.approx(expected, abs=1e-4)


def test_an_all_ones_mask_or_a_kept_cache_lets_examples_attend_to_each_other() -> None:
    model, examples = _model(), _examples()
    expected = _per_example_loss(model, examples)
    batch = PackingCollator()([{"input_ids": e.input_ids, "labels": e.labels} for e in examples])
    with torch.no_grad():
        all_ones = float(model(**batch, attention_mask=torch.ones_like(batch["input_ids"])).loss)
        cached = float(model(**{**batch, "use_cache": True}).loss)
    assert abs(all_ones - expected) > 1e-3
    assert abs(cached - expected) > 1e-3  # the config's use_cache=True would silently do the same
    assert cached == pytest.approx(all_ones, abs=1e-5)


def test_a_batch_over_the_token_budget_is_split_into_rows_with_the_same_loss() -> None:
    model, examples = _model(), _examples()  # 14, 16, 20 and 16 tokens
    expected = _per_example_loss(model, examples)
    features = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    assert PackingCollator(66)(features)["input_ids"].shape == (1, 66)  # it all fits: one row, as before
    rows = rows_within(examples, 32)
    assert sorted(sorted(len(e) for e in row) for row in rows) == [[14], [16, 16], [20]]
    batch = PackingCollator(32, pad_token_id=7)(features)
    assert batch["input_ids"].shape == (3, 32) and "attention_mask" not in batch and batch["use_cache"] is False
    for row, ids, labels, positions in zip(
        rows, batch["input_ids"], batch["labels"], batch["position_ids"], strict=True
    ):
        used = sum(len(e) for e in row)
        # The row's examples, then its padding as a segment of its own: positions from 0, no labels.
        assert ids[used:].tolist() == [7] * (32 - used) and bool((labels[used:] == IGNORE).all())
        assert positions[used:].tolist() == list(range(32 - used))
        assert positions[:used].tolist() == [p for e in row for p in range(len(e))]
    with torch.no_grad():
        split = float(model(**batch).loss)
    assert split == pytest.approx(expected, abs=1e-4)


def test_the_row_budget_holds_a_whole_example() -> None:
    with pytest.raises(CurationError, match="must be at least --max-length"):
        TrainConfig(max_length=1024, max_tokens_per_row=512)
    assert TrainConfig(max_length=512, max_tokens_per_row=512).max_tokens_per_row == 512
