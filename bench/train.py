"""Training throughput: our trainer (padding-free packing) against a default `transformers.Trainer`
configuration (padding to the longest example of the batch, an attention mask, no packing), same
model, same examples, same batch size, same steps, in the same run.

    python bench/train.py [--steps 20] [--batch-size 8] [--examples 256] [--shape tiny|smollm2]
                          [--max-tokens-per-row 2048]

Examples are token ids with Fine-tune-CoT-like lengths (prompts 30-120 tokens, completions 40-400),
the loss on completion tokens only in both; ours packs each batch into rows of at most
`--max-tokens-per-row` tokens (the trainer's default, TrainConfig.max_tokens_per_row). The figure
is completion-and-prompt tokens of real examples per second (padding excluded). On CPU both run
in fp32 with AdamW; on a GPU both in bf16, ours with fused AdamW, the baseline with the Trainer's
default optimizer. On a GPU the model is
SmolLM2-135M-shaped with random weights (`--shape smollm2`, the default there), and model FLOPs
utilisation is printed for both: (6N + 12·L·H·Q·T) FLOPs per token, N the parameters including
the tied output layer, L layers, H heads, Q head size, T the mean example length, against 989
TFLOP/s (an H100/H200's dense bf16 peak).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from typing import Any

import torch

from trainer.config import TrainConfig
from trainer.packing import IGNORE, PackingCollator, Tokenized

PEAK_FLOPS = 989e12
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 4,
             "num_key_value_heads": 2},
    "smollm2": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                "num_key_value_heads": 3},
}  # fmt: skip
VOCAB = 49152


def examples(count: int, seed: int) -> list[Tokenized]:
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        prompt, completion = rng.randint(30, 120), rng.randint(40, 400)
        ids = [rng.randrange(3, VOCAB) for _ in range(prompt + completion)]
        made.append(Tokenized(ids, [IGNORE] * prompt + ids[prompt:]))
    return made


def padding_tokenizer() -> Any:
    """A tokenizer whose only use is DataCollatorForSeq2Seq's padding (pad id 0, right padding)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=Tokenizer(WordLevel({"<pad>": 0, "<unk>": 1}, unk_token="<unk>")), pad_token="<pad>"
    )


def model(shape: str) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, tie_word_embeddings=True, max_position_embeddings=2048, **SHAPES[shape])
    config.use_cache = True  # as released checkpoints say; the packing collator turns it off per batch
    built: Any = LlamaForCausalLM(config)
    return built


def flops_per_token(built: Any, mean_length: float) -> float:
    config = built.config
    parameters = sum(p.numel() for p in built.parameters())
    if config.tie_word_embeddings:
        parameters += config.vocab_size * config.hidden_size  # the output layer does its own matmul
    heads, head_size = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    return float(6 * parameters + 12 * config.num_hidden_layers * heads * head_size * mean_length)


class _Counting:
    """The collator, counting the real tokens (padding excluded) and examples it batches."""

    def __init__(self, collator: Any) -> None:
        self.collator, self.tokens, self.examples = collator, 0, 0

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        self.tokens += sum(len(f["input_ids"]) for f in features)
        self.examples += len(features)
        return self.collator(features)


def run(name: str, shape: str, features: list[Tokenized], collator: Any, steps: int, batch: int, ours: bool) -> float:
    from transformers import Trainer, TrainingArguments

    gpu = torch.cuda.is_available()
    built = model(shape)
    if gpu:
        built = built.to("cuda")
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, max_steps=steps, per_device_train_batch_size=batch, learning_rate=1e-4,
            lr_scheduler_type="cosine", warmup_steps=0.1, save_strategy="no", report_to="none", disable_tqdm=True,
            bf16=gpu, optim="adamw_torch_fused" if gpu and ours else "adamw_torch", use_cpu=not gpu,
            remove_unused_columns=False, logging_steps=10_000, seed=0, data_seed=0,
        )  # fmt: skip
        data = [{"input_ids": f.input_ids, "labels": f.labels} for f in features]
        counted = _Counting(collator)
        trainer = Trainer(model=built, args=args, train_dataset=data, data_collator=counted)
        if gpu:
            torch.cuda.synchronize()
        started = time.perf_counter()
        trainer.train()
        if gpu:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
    tokens = counted.tokens
    rate = tokens / elapsed
    mfu = ""
    if gpu:
        mean = tokens / counted.examples
        mfu = f"  MFU {100 * rate * flops_per_token(built, mean) / PEAK_FLOPS:.1f}%"
    print(f"{name:<44} {tokens:>9,} tokens in {elapsed:7.1f} s  {rate:>10,.0f} tokens/s{mfu}", flush=True)
    return rate


def main() -> None:
    gpu = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200 if gpu else 8)
    parser.add_argument("--batch-size", type=int, default=16 if gpu else 8)
    parser.add_argument("--examples", type=int, default=2048 if gpu else 128)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="smollm2" if gpu else "tiny")
    parser.add_argument("--max-tokens-per-row", type=int, default=TrainConfig().max_tokens_per_row)
    options = parser.parse_args()
    from transformers import DataCollatorForSeq2Seq

    features = examples(options.examples, seed=0)
    device = torch.cuda.get_device_name() if gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{options.shape}-shaped Llama, random weights, on {device}; {options.steps} steps of "
          f"{options.batch_size} examples ({'bf16' if gpu else 'fp32'})")  # fmt: skip
    packing = PackingCollator(options.max_tokens_per_row)
    ours = run("ours: packed, no padding, no mask", options.shape, features, packing, options.steps,
               options.batch_size, ours=True)  # fmt: skip
    baseline = run(
        "default Trainer: pad to longest, attention mask", options.shape, features,
        DataCollatorForSeq2Seq(padding_tokenizer(), label_pad_token_id=IGNORE, padding="longest"),
        options.steps, options.batch_size, ours=False,
    )  # fmt: skip
    print(f"ratio (ours / default): {ours / baseline:.2f}x")


if __name__ == "__main__":
    main()
