"""Decoding tokens/s with one torch thread against torch's default (one per core), same model,
same batch, same run; optionally beside busy processes, as on a shared worker or a CI runner.

    python bench/generation_threads.py [--batch 16] [--tokens 48] [--busy 0|1|...] [--model embedded|FOLDER]

It decodes a fixed number of tokens (min = max new tokens) greedily from the bundled SmolLM2-135M
(or a model folder) on the CPU, first with torch's default threads, then capped by
`workers.teachers.cpu_threads.generation_threads` to one, and prints both rates and the ratio.
`--busy N` starts N processes that spin on a core for the duration (the other work of a shared
machine); CURATION_GENERATION_THREADS's default of 1 rests on these figures.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from typing import Any


def _spin() -> None:
    while True:
        pass


def _rate(model: Any, encoded: Any, tokens: int, pad: int) -> float:
    import torch

    started = time.perf_counter()
    with torch.inference_mode():
        model.generate(**encoded, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=pad)
    return int(encoded["input_ids"].shape[0]) * tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--busy", type=int, default=0, help="Busy processes beside the benchmark.")
    parser.add_argument("--model", default="embedded")
    options = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workers.teachers.cpu_threads import generation_threads

    path: Any = options.model
    if path == "embedded":
        from workers.teachers.embedded_model import prepare_embedded_model

        path = prepare_embedded_model()
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    question = "Ava has 45 marbles. She gives a third of her marbles to Tom. How many marbles does she keep?"
    encoded = tokenizer([question] * options.batch, return_tensors="pt", padding=True)
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(options.busy)]
    for process in spinners:
        process.start()
    try:
        _rate(model, encoded, 4, tokenizer.pad_token_id)  # warm-up
        default_threads = torch.get_num_threads()
        baseline = _rate(model, encoded, options.tokens, tokenizer.pad_token_id)
        with generation_threads("cpu", 1):
            capped = _rate(model, encoded, options.tokens, tokenizer.pad_token_id)
    finally:
        for process in spinners:
            process.terminate()
    print(
        f"batch {options.batch} x {options.tokens} tokens, {options.busy} busy processes beside: "
        f"{default_threads} threads (torch default) {baseline:.0f} tok/s, 1 thread {capped:.0f} tok/s; "
        f"ratio 1 thread / default = {capped / baseline:.2f}x"
    )


if __name__ == "__main__":
    main()
