"""Padding-free packing gives every example the loss it has alone (within 1e-4), and the two ways
of getting it wrong do not: an all-ones attention mask, and a model config that keeps its cache."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tests.support.tiny_model import tiny_llama_config
from trainer.packing import IGNORE, PackingCollator, Tokenized, pack


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
