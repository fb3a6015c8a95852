"""The training configuration: every field says what it does, and the whole of it is stored with
the training run (training_run.config), so that a run can be repeated from its row."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from curation.errors import CurationError

ROW_BUDGET = 2048


@dataclass
class TrainConfig:
    """How a student is fine-tuned on a snapshot export (TRL-style: one dataclass, fields that
    document themselves through their `help` metadata; `curation train --help` shows them)."""

    format: str = field(
        default="ftcot",
        metadata={"help": "Snapshot export format the student learns: ftcot, pad, trl-prompt-completion, ..."},
    )
    max_steps: int = field(default=-1, metadata={"help": "Optimizer steps; overrides epochs when > 0."})
    epochs: float = field(default=3.0, metadata={"help": "Passes over the training examples (when max_steps <= 0)."})
    batch_size: int = field(
        default=8, metadata={"help": "Examples per device per micro-batch (packed into rows of max_tokens_per_row)."}
    )
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate (AdamW)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    warmup_ratio: float = field(default=0.1, metadata={"help": "Share of steps of linear warm-up before the decay."})
    lr_scheduler: str = field(default="cosine", metadata={"help": "transformers scheduler: cosine, linear, ..."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    seed: int = field(default=0, metadata={"help": "Seed of initialisation of heads, data order and dropout."})
    max_length: int = field(default=1024, metadata={"help": "Tokens per example; longer completions are cut."})
    packing: bool = field(default=True, metadata={"help": "Padding-free packing (causal LMs); off: pad to longest."})
    max_tokens_per_row: int | None = field(
        default=None,
        metadata={
            "help": "Longest packed row: a micro-batch longer than this is split into several rows (attention "
            "costs a row's length squared); at least max_length. Default: 2048, or max_length when longer."
        },
    )
    validation_fraction: float = field(
        default=0.1,
        metadata={"help": "Share of the training problems held out (by problem id hash) to select the checkpoint."},
    )
    max_validation_problems: int | None = field(
        default=256,
        metadata={"help": "At most this many validation problems (the rest of the fraction trains); none: no cap."},
    )
    save_steps: int = field(default=50, metadata={"help": "Checkpoint (and validate) every this many steps."})
    save_total_limit: int = field(default=2, metadata={"help": "Checkpoints kept on disk (the best one is kept too)."})
    logging_steps: int = field(default=1, metadata={"help": "Record the training loss every this many steps."})
    precision: str = field(
        default="auto", metadata={"help": "auto (bf16 on a GPU that has it, fp32 on CPU), bf16, fp16 or fp32."}
    )
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa, eager or flash_attention_2."})
    dataloader_workers: int = field(default=0, metadata={"help": "Data loader processes."})

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise CurationError("batch size and gradient accumulation steps must be at least 1")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise CurationError("train for some steps or epochs: --max-steps or --epochs must be positive")
        if not 0 <= self.validation_fraction < 1:
            raise CurationError("--validation-fraction must be in [0, 1)")
        # Unset (as in configs stored before the option existed, which a resume reads back): 2048, or
        # max_length when longer, so that an old run resumes and --max-length alone is never refused.
        if self.max_tokens_per_row is None:
            self.max_tokens_per_row = max(ROW_BUDGET, self.max_length)
        if self.packing and self.max_tokens_per_row < self.max_length:
            raise CurationError(
                f"--max-tokens-per-row ({self.max_tokens_per_row}) must be at least --max-length ({self.max_length}): "
                "an example is never split across rows"
            )
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise CurationError(f"unknown precision {self.precision!r}: auto, bf16, fp16 or fp32")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        # A config stored before the cap existed carved its validation split without one: a resume
        # must carve the same split.
        values = {"max_validation_problems": None, **values}
        return cls(**{k: v for k, v in values.items() if k in known})
