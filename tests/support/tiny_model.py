"""A randomly initialised Llama small enough to train in seconds on a CPU, with the bundled
SmolLM2 tokenizer: the student of the trainer's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tiny_llama_config(vocab_size: int, **overrides: Any) -> Any:
    from transformers import LlamaConfig

    options: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        "tie_word_embeddings": True,
        "use_cache": True,  # as released configs say: the packing collator must override it
        "attn_implementation": "sdpa",
    }
    options.update(overrides)
    config = LlamaConfig(**options)
    config.architectures = ["LlamaForCausalLM"]
    return config


def save_tiny_student(tokenizer_dir: Path, target: Path, seed: int = 0) -> Path:
    """A folder like a released checkpoint: config, random weights and the SmolLM2 tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_llama_config(len(tokenizer)))
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
