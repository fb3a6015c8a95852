"""Evaluation throughput: problems/s of `curation eval` (greedy, batched with left padding)
against the same evaluation one problem at a time, same model, same problems, same run.

    python bench/eval.py [--problems 32] [--batch-size 16] [--max-new-tokens 96] [--model embedded|FOLDER]

Both go through `trainer.evaluation.evaluate` end to end on fresh SQLite files: prompts, greedy
generation, storing the student rationales, verification, the evaluation row. The model defaults
to the bundled SmolLM2-135M (de-quantised Q4_1) on CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from curation.db import migrations
from curation.db.session import Database
from curation.ingestion.service import ingest_procedural
from trainer.evaluation import EvalSpec, evaluate


def one(model: str, problems: int, batch_size: int, max_new_tokens: int, folder: Path) -> tuple[float, int, int]:
    """problems/s, correct, student tokens generated (from the evaluation row's metrics)."""
    db = Database(f"sqlite:///{folder / f'batch-{batch_size}.db'}")
    migrations.upgrade(db)
    with db.transaction() as session:
        ingest_procedural(session, count=problems, seed=1, split="test")
    spec = EvalSpec(model=model, task="procedural", split="test", batch_size=batch_size, max_new_tokens=max_new_tokens)
    started = time.perf_counter()
    report = evaluate(db, spec)
    elapsed = time.perf_counter() - started
    db.dispose()
    return problems / elapsed, report.correct, int((report.metrics or {}).get("student_tokens", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--model", default="embedded")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        batched, correct_batched, tokens_batched = one(
            options.model, options.problems, options.batch_size, options.max_new_tokens, scratch
        )
        single, correct_single, tokens_single = one(
            options.model, options.problems, 1, options.max_new_tokens, scratch
        )
    print(
        f"{options.problems} procedural problems, {options.model}, greedy, {options.max_new_tokens} new tokens at most"
    )
    print(
        f"batched ({options.batch_size} a batch, left padding): {batched:6.2f} problems/s ({correct_batched} correct, "
        f"{tokens_batched} student tokens)"
    )
    print(
        f"one at a time:                        {single:6.2f} problems/s ({correct_single} correct, "
        f"{tokens_single} student tokens)"
    )
    print(f"ratio (batched / one at a time): {batched / single:.2f}x")


if __name__ == "__main__":
    main()
