"""`curation verifier train`: a learned verifier (question + rationale -> P(correct)) from a snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curation.cli.context import console, database

app = typer.Typer(help="Learned verifiers for best-of-N and step-verified decoding.", no_args_is_help=True)


@app.command("train")
def train(
    snapshot: Annotated[str, typer.Option(help="NAME@N (or NAME: its newest version); its labelled members.")],
    out: Annotated[Path, typer.Option(help="Folder to write the verifier to (replaced if it exists).")],
    base: Annotated[
        str, typer.Option(help="A causal LM folder to start from; 'embedded' for the bundled SmolLM2-135M.")
    ] = "embedded",
    epochs: Annotated[int, typer.Option(min=1)] = 2,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    learning_rate: Annotated[float, typer.Option()] = 5e-5,
    max_length: Annotated[int, typer.Option(min=16, help="Tokens per example (question + rationale).")] = 512,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train a sequence-classification verifier on a snapshot's labelled rationales.

    A member labelled correct is a positive; incorrect, error and unparseable are negatives; an
    unlabelled member is left out. Make the snapshot with `verdict: any` so that it holds both.
    """
    from trainer.verifier import VerifierTraining, examples_from_snapshot, train_verifier

    with database().read() as session:
        data = examples_from_snapshot(session, snapshot)
    if base == "embedded":
        from workers.teachers.embedded_model import prepare_embedded_model

        base_path = prepare_embedded_model()
    else:
        base_path = Path(base)
    config = VerifierTraining(
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, max_length=max_length, seed=seed
    )
    trained = train_verifier(base_path, data.examples, out, config, trained_from=f"snapshot {data.snapshot}")
    skipped = f", {data.unlabelled} unlabelled left out" if data.unlabelled else ""
    console.print(
        f"verifier {trained.path}: {trained.examples} examples ({trained.correct} correct{skipped}), "
        f"loss {' -> '.join(f'{x:.3f}' for x in trained.losses)}, training accuracy {trained.train_accuracy:.1%}"
    )
