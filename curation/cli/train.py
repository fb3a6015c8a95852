"""`curation train`: fine-tune a student on one snapshot version (trainer/runs.py does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curation.cli.context import console, database
from curation.errors import CurationError


def train(
    snapshot: Annotated[str, typer.Option("--snapshot", help="The snapshot version to train on: NAME@N.")],
    base_model: Annotated[
        str, typer.Option("--base-model", help="A model folder, a hub id in the local cache, or embedded.")
    ] = "embedded",
    format: Annotated[
        str, typer.Option("--format", help="Export format: ftcot, pad, trl-prompt-completion.")
    ] = "ftcot",
    max_steps: Annotated[int, typer.Option(help="Optimizer steps (overrides --epochs when > 0).")] = -1,
    epochs: Annotated[float, typer.Option(help="Passes over the training examples.")] = 3.0,
    batch_size: Annotated[int, typer.Option(help="Examples per device per micro-batch.")] = 8,
    gradient_accumulation_steps: Annotated[int, typer.Option(help="Micro-batches per optimizer step.")] = 1,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate.")] = 5e-5,
    warmup_ratio: Annotated[float, typer.Option(help="Share of steps of warm-up before the cosine decay.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of data order and initialisation.")] = 0,
    max_length: Annotated[int, typer.Option(help="Tokens per example.")] = 1024,
    packing: Annotated[bool, typer.Option(help="Padding-free packing (causal LMs).")] = True,
    max_tokens_per_row: Annotated[
        int | None,
        typer.Option(
            help="Longest packed row; a longer micro-batch is split into rows (at least --max-length; "
            "default 2048, or --max-length when longer)."
        ),
    ] = None,
    validation_fraction: Annotated[
        float, typer.Option(help="Share of training problems held out to select the checkpoint.")
    ] = 0.1,
    max_validation_problems: Annotated[
        int, typer.Option(help="At most this many validation problems, scored at every checkpoint (0: no cap).")
    ] = 256,
    save_steps: Annotated[int, typer.Option(help="Checkpoint and validate every this many steps.")] = 50,
    precision: Annotated[str, typer.Option(help="auto, bf16, fp16 or fp32.")] = "auto",
    output_root: Annotated[
        Path | None, typer.Option(help="Where run folders go (default: <data dir>/training).")
    ] = None,
    resume: Annotated[
        int | None, typer.Option(help="Continue this training run (after a crash) instead of starting one.")
    ] = None,
    queue: Annotated[bool, typer.Option("--queue", help="Send the run to a GPU worker (training queue).")] = False,
) -> None:
    """Fine-tune a student on a snapshot export; the run, its curves and its model are stored.

    Several processes (GPUs, or CPU processes with gloo): `torchrun --nproc_per_node N -m
    curation.cli.app train ...` (or accelerate launch); the main process alone writes the rows.
    """
    from trainer.config import TrainConfig
    from trainer.distributed import from_main, is_main_process
    from trainer.runs import create_training_run, execute_training_run

    db = database()
    main = is_main_process()
    if resume is None:
        config = TrainConfig(
            format=format, max_steps=max_steps, epochs=epochs, batch_size=batch_size,
            gradient_accumulation_steps=gradient_accumulation_steps, learning_rate=learning_rate,
            warmup_ratio=warmup_ratio, seed=seed, max_length=max_length, packing=packing,
            max_tokens_per_row=max_tokens_per_row,
            validation_fraction=validation_fraction,
            max_validation_problems=max_validation_problems or None, save_steps=save_steps, precision=precision,
        )  # fmt: skip
        created: int | str = "not created"
        if main:
            try:
                with db.transaction() as session:
                    created = create_training_run(session, snapshot, base_model, config, output_root=output_root).id
            except CurationError as error:
                created = str(error)
        # Under torchrun every process runs this command: the main one creates the run, the
        # others train the run it created.
        created = from_main(created)
        if isinstance(created, str):
            raise CurationError(created if main else f"the main process did not create the run: {created}")
        run_id = created
        if main:
            console.print(f"training run #{run_id} on {snapshot}")
    else:
        run_id = resume
    if queue and not main:
        return
    if queue:
        from trainer.tasks import send_training

        send_training(run_id)
        console.print(f"training run #{run_id} sent to the training queue (`curation worker --queues training`)")
        return
    from trainer.lease import RunHeld

    try:
        run = execute_training_run(db, run_id)
    except RunHeld as held:
        raise CurationError(f"{held}; it is being trained elsewhere (try again once its lease runs out)") from None
    if not main:
        return
    metrics = run.metrics or {}
    console.print(
        f"training run #{run.id} {run.status.value}: {metrics.get('steps')} steps, {metrics.get('tokens_seen'):,} "
        f"tokens at {metrics.get('tokens_per_second', 0):,.0f} tokens/s in {metrics.get('wall_seconds', 0):.0f} s "
        f"({metrics.get('validation_seconds', 0):.0f} s of it validating); "
        f"model {run.checkpoint_path} (selected checkpoint: {metrics.get('selected_checkpoint') or 'the last step'}). "
        f"Next: `curation eval --model run:{run.id} --task TASK --split test`"
    )
