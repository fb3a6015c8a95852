"""`python -m tests.support.train_script BASE RUN_DIR STEPS [DIE_SAVING_STEP]`: a small
deterministic fit, run in a subprocess so that a test can kill it with SIGKILL mid-run and resume
it. With DIE_SAVING_STEP it SIGKILLs itself in the middle of writing that step's checkpoint (the
weights and optimizer written, not the RNG states nor trainer_state.json): a kill at the worst
moment, every time."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from trainer.config import TrainConfig
from trainer.fit import fit
from trainer.packing import Example

NAMES = ["Tom", "Ana", "Raj", "Mei", "Olu", "Ivan", "Lea", "Sam", "Noor", "Kai"]


def arithmetic_examples(count: int) -> list[Example]:
    """Word problems whose Fine-tune-CoT completion restates a fact of the question: distinct per
    example, and learnable by a two-layer model in a few dozen steps (copying, not arithmetic)."""
    examples = []
    for i in range(count):
        name, apples = NAMES[i % len(NAMES)], 3 + 7 * i % 89
        examples.append(
            Example(
                f"{name} has {apples} apples. How many apples does {name} have? ###",
                f" {name} has {apples} apples. --> {apples} END",
                problem_id=i,
            )
        )
    return examples


PEOPLE = [
    "Tom", "Ana", "Raj", "Mei", "Olu", "Ivan", "Lea", "Sam", "Noor", "Kai",
    "Zoe", "Max", "Ida", "Leo", "Eva", "Ben", "Amy", "Dan", "Liz", "Ray",
]  # fmt: skip


def short_examples(count: int) -> list[Example]:
    """A name for each example and a count for each name: a lookup a tiny model learns in a minute
    of CPU (the names tell the examples apart from the first token on)."""
    examples = []
    for i in range(count):
        name, apples = PEOPLE[i % len(PEOPLE)], 3 + 7 * i % 89
        examples.append(Example(f"{name} has some apples. ###", f" {name} has {apples} apples --> {apples} END", i))
    return examples


def config(steps: int, **overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "max_steps": steps, "batch_size": 4, "learning_rate": 3e-3, "warmup_ratio": 0.05, "save_steps": 5,
        "save_total_limit": 100, "validation_fraction": 0.0, "seed": 1,
    }  # fmt: skip
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def die_while_saving(step: int) -> None:
    from transformers import Trainer

    real = Trainer._save_rng_state

    def dying(self: Any, output_dir: str) -> None:
        if self.state.global_step == step:
            os.kill(os.getpid(), signal.SIGKILL)
        real(self, output_dir)

    Trainer._save_rng_state = dying  # type: ignore[method-assign]


def main() -> None:
    base, run_dir, steps = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    if len(sys.argv) > 4:
        die_while_saving(int(sys.argv[4]))
    result = fit(config(steps), base, arithmetic_examples(12), [], run_dir, progress=False)
    print(json.dumps({"train_loss": result.train_loss, "resumed_from": result.resumed_from}))


if __name__ == "__main__":
    main()
