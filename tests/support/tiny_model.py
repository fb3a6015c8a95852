"""Randomly initialised Llamas (and a T5) with the bundled SmolLM2 tokenizer: small enough to train
in seconds on a CPU (the trainer's student), or to load in well under a second (decoding's
plumbing tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workers.teachers.embedded_model import gguf_path


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


def tiny_t5_config(tokenizer: Any, **overrides: Any) -> Any:
    """An encoder-decoder (PaD's CodeT5 is a T5) over the SmolLM2 vocabulary. The tokenizer has no
    T5 specials: padding is its pad (= end-of-text) token, and the decoder starts from its BOS."""
    from transformers import T5Config

    options: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "d_model": 64,
        "d_kv": 16,
        "d_ff": 128,
        "num_layers": 2,
        "num_decoder_layers": 2,
        "num_heads": 4,
        "relative_attention_num_buckets": 16,
        "dropout_rate": 0.0,
        "feed_forward_proj": "relu",
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.bos_token_id,
        "use_cache": True,
    }
    options.update(overrides)
    config = T5Config(**options)
    config.architectures = ["T5ForConditionalGeneration"]
    return config


def save_tiny_t5(tokenizer_dir: Path, target: Path, seed: int = 0) -> Path:
    """A folder like a released CodeT5 checkpoint, random weights, the SmolLM2 tokenizer."""
    import torch
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    T5ForConditionalGeneration(tiny_t5_config(tokenizer)).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def build_tiny_llama(target: Path, *, seed: int = 0) -> Path:
    """An even smaller one, tokenizer read from the GGUF itself (no converted SmolLM2 folder needed)."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    source = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    torch.manual_seed(seed)
    config = tiny_llama_config(
        len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        num_key_value_heads=1,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
