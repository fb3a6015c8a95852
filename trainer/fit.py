"""Fine-tuning a student on prompt/completion examples with `transformers.Trainer`.

Causal LMs learn from padding-free packed rows (trainer/packing.py); encoder-decoder models (T5,
CodeT5, as PaD uses) go through `Seq2SeqTrainer`, the prompt as the encoder's input and the
completion as the labels. Either way the loss is on completion tokens only.

On a GPU: bf16 where the device has it, fused AdamW. On a CPU: fp32, plain AdamW. Checkpoints
every `save_steps` under `run_dir/checkpoints`, each with the Trainer's state (optimizer,
scheduler, RNG states, data position, log history), so a run killed mid-way resumes from its last
checkpoint and continues the same loss curve. When there is a validation split, it is scored at
every checkpoint and the best one (lowest validation loss) is the model kept; the test split is
never looked at here.

Several processes: the same code under `torchrun --nproc_per_node N -m curation.cli.app train ...` or
`accelerate launch -m curation.cli.app train ...`; the Trainer shards the batches (each process
packs its own) and only the main process writes the model.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import TrainConfig
from trainer.packing import IGNORE, Example, PackingCollator, Tokenized, tokenize

CHECKPOINTS = "checkpoints"
MODEL = "model"
TRAINER_STATE = "trainer_state.json"  # transformers' TRAINER_STATE_NAME
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

log = logging.getLogger(__name__)


def last_complete_checkpoint(folder: Path) -> str | None:
    """The highest-numbered `checkpoint-N` folder under `folder` that was written to the end, or None.

    `Trainer._save_checkpoint` writes the weights, then the optimizer, scheduler and RNG states, and
    `trainer_state.json` last (plainly, not via a rename). A run killed while saving leaves a
    `checkpoint-N` folder without it, or with it half-written; transformers' `get_last_checkpoint`
    would pick that folder by its number alone and the resume would fail or go wrong. Such folders
    are skipped (and logged); the Trainer writes them over when it reaches their step again."""
    if not folder.is_dir():
        return None
    numbered = sorted(
        ((int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()),
        reverse=True,
    )
    for _, path in numbered:
        try:
            state = json.loads((path / TRAINER_STATE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = None
        if isinstance(state, dict):
            return str(path)
        log.warning("skipping %s: no complete %s (a save that was cut short)", path, TRAINER_STATE)
    return None


@dataclass
class FitResult:
    model_dir: Path
    selected_checkpoint: str | None  # None: no validation split, the last step's weights are kept
    checkpoints: list[str]
    train_loss: list[tuple[int, float]]
    validation_loss: list[tuple[int, float]]
    steps: int
    tokens_seen: int
    tokens_per_second: float
    wall_seconds: float  # this session's time in the trainer, validation included (after a resume: since it)
    validation_seconds: float = 0.0  # of which scoring the validation split
    resumed_from: str | None = None
    precision: str = "fp32"
    devices: dict[str, Any] = field(default_factory=dict)


def _precision(config: TrainConfig, torch: Any) -> str:
    if config.precision != "auto":
        return config.precision
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def _seq2seq_features(tokenizer: Any, example: Example, max_length: int) -> dict[str, list[int]]:
    """The prompt as the encoder's input, the completion as the labels, ending with the
    end-of-sequence token (T5's tokenizer adds it; a causal LM's, reused for a T5, does not), so
    that the student learns to stop."""
    source = list(tokenizer(example.prompt, truncation=True, max_length=max_length)["input_ids"])
    target = list(tokenizer(text_target=example.completion, truncation=True, max_length=max_length)["input_ids"])
    eos = tokenizer.eos_token_id
    if eos is not None and (not target or target[-1] != eos):
        target = [*target[: max_length - 1], int(eos)]
    return {"input_ids": source, "labels": target}


class ProgressBar:
    """A tqdm bar over optimizer steps with the loss and tokens/s of this session (a TrainerCallback)."""

    def __new__(cls) -> Any:
        from tqdm.auto import tqdm
        from transformers import TrainerCallback

        class _Bar(TrainerCallback):
            def __init__(self) -> None:
                self.bar: Any = None
                self.started = 0.0
                self.tokens_at_start = 0
                self.loss: float | None = None

            def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if state.is_world_process_zero:
                    self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", file=sys.stderr)
                self.started, self.tokens_at_start = time.perf_counter(), state.num_input_tokens_seen

            def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
                if logs and "loss" in logs:
                    self.loss = float(logs["loss"])

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if self.bar is None:
                    return
                elapsed = max(time.perf_counter() - self.started, 1e-9)
                rate = (state.num_input_tokens_seen - self.tokens_at_start) / elapsed
                postfix = {"tok/s": f"{rate:,.0f}"}
                if self.loss is not None:
                    postfix["loss"] = f"{self.loss:.4f}"
                self.bar.set_postfix(postfix, refresh=False)
                self.bar.update(state.global_step - self.bar.n)

            def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if self.bar is not None:
                    self.bar.close()

        return _Bar()


def _curves(log_history: Sequence[dict[str, Any]]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    train = [(int(e["step"]), float(e["loss"])) for e in log_history if "loss" in e]
    validation = [(int(e["step"]), float(e["eval_loss"])) for e in log_history if "eval_loss" in e]
    return train, validation


def fit(
    config: TrainConfig,
    base_model: str | Path,
    train: Sequence[Example],
    validation: Sequence[Example],
    run_dir: Path,
    *,
    resume: bool = True,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> FitResult:
    """Train `base_model` on `train`, select the checkpoint on `validation` (if any), save the
    selected weights with the tokenizer in `run_dir/model`. With `resume`, a checkpoint already in
    `run_dir` is continued rather than started over. `callbacks`: more TrainerCallbacks."""
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        Trainer,
        TrainingArguments,
        set_seed,
    )
    from transformers.trainer_callback import PrinterCallback

    if not train:
        raise ValueError("no training examples")
    set_seed(config.seed)
    precision = _precision(config, torch)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    on_gpu = torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    seq2seq = bool(getattr(AutoConfig.from_pretrained(base_model), "is_encoder_decoder", False))
    # Master weights stay fp32 under mixed precision: the Trainer's autocast does the bf16 compute.
    load: dict[str, Any] = {"dtype": torch.float32 if precision in ("bf16", "fp16") else dtype}
    if seq2seq:
        model: Any = AutoModelForSeq2SeqLM.from_pretrained(base_model, **load)
        features = [_seq2seq_features(tokenizer, e, config.max_length) for e in train]
        held_out = [_seq2seq_features(tokenizer, e, config.max_length) for e in validation]
        collator: Any = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=IGNORE)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            base_model, attn_implementation=config.attn_implementation, **load
        )
        tokenized = [tokenize(tokenizer, e, config.max_length) for e in train]
        held = [tokenize(tokenizer, e, config.max_length) for e in validation]
        features = [_as_features(t) for t in tokenized]
        held_out = [_as_features(t) for t in held]
        collator = (
            PackingCollator(config.max_tokens_per_row, pad_token_id=int(tokenizer.pad_token_id))
            if config.packing
            else DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE, padding="longest")
        )
    model.config.use_cache = False  # see trainer/packing.py: a cache defeats the packed mask
    checkpoints = run_dir / CHECKPOINTS
    arguments: dict[str, Any] = {
        "output_dir": str(checkpoints),
        "max_steps": config.max_steps if config.max_steps > 0 else -1,
        "num_train_epochs": config.epochs,
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "learning_rate": config.learning_rate,
        "weight_decay": config.weight_decay,
        "warmup_steps": config.warmup_ratio,
        "lr_scheduler_type": config.lr_scheduler,
        "max_grad_norm": config.max_grad_norm,
        "seed": config.seed,
        "data_seed": config.seed,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "optim": "adamw_torch_fused" if on_gpu else "adamw_torch",
        "logging_steps": config.logging_steps,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "eval_strategy": "steps" if held_out else "no",
        "eval_steps": config.save_steps,
        "load_best_model_at_end": bool(held_out),
        "metric_for_best_model": "eval_loss",
        "greater_is_better": False,
        "prediction_loss_only": True,
        "report_to": "none",
        "disable_tqdm": True,
        "include_num_input_tokens_seen": "all" if config.packing and not seq2seq else "non_padding",
        "remove_unused_columns": False,
        "dataloader_num_workers": config.dataloader_workers,
        "use_cpu": not on_gpu,
    }
    trainer_class: Any = Trainer
    if seq2seq:
        args: Any = Seq2SeqTrainingArguments(**arguments)
        trainer_class = Seq2SeqTrainer
    else:
        args = TrainingArguments(**arguments)
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=features,
        eval_dataset=held_out or None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[*([ProgressBar()] if progress else []), *callbacks],
    )
    trainer.remove_callback(PrinterCallback)  # our bar shows the loss; no dict printed per step
    last = last_complete_checkpoint(checkpoints) if resume else None
    output = trainer.train(resume_from_checkpoint=last)
    state = trainer.state
    model_dir = run_dir / MODEL
    trainer.model.config.use_cache = True  # for whoever generates with it
    trainer.save_model(str(model_dir))  # the main process only, under torchrun
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(model_dir))
    train_loss, validation_loss = _curves(state.log_history)
    runtime = float(output.metrics.get("train_runtime", 0.0))
    session_tokens = state.num_input_tokens_seen - trainer._initial_num_input_tokens_seen
    # train_runtime includes the validation passes; tokens/s is the training's own rate.
    first_step = int(last.rsplit("-", 1)[1]) if last else 0
    validating = sum(
        float(e["eval_runtime"]) for e in state.log_history if "eval_runtime" in e and e["step"] > first_step
    )
    training = max(runtime - validating, 0.0)
    saved = sorted(
        (str(p) for p in checkpoints.glob("checkpoint-*") if p.is_dir()), key=lambda p: int(p.rsplit("-", 1)[1])
    )
    return FitResult(
        model_dir=model_dir,
        selected_checkpoint=state.best_model_checkpoint,
        checkpoints=saved,
        train_loss=train_loss,
        validation_loss=validation_loss,
        steps=state.global_step,
        tokens_seen=int(state.num_input_tokens_seen),
        tokens_per_second=session_tokens / training if training > 0 else 0.0,
        wall_seconds=runtime,
        validation_seconds=validating,
        resumed_from=last,
        precision=precision,
        devices={"cuda": on_gpu, "world_size": args.world_size},
    )


def _as_features(example: Tokenized) -> dict[str, list[int]]:
    return {"input_ids": example.input_ids, "labels": example.labels}
