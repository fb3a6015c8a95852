"""An encoder-decoder student (a tiny random T5 over the SmolLM2 vocabulary, as PaD trains CodeT5):
`fit()` trains it through Seq2SeqTrainer until it reproduces what it was shown, a training run on
a snapshot export stores it as a folder AutoModelForSeq2SeqLM loads, and `curation eval`'s local
backend generates with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from curation.db.session import Database
from curation.errors import CurationError
from curation.ingestion.service import ingest_procedural
from curation.models import Evaluation, TrainingStatus
from tests.support.tiny_model import save_tiny_t5
from tests.support.train_script import config, short_examples
from tests.support.training_data import reference_snapshot
from trainer.config import TrainConfig
from trainer.decoding.greedy import greedy
from trainer.decoding.modes import Decoding
from trainer.evaluation import EvalSpec, evaluate
from trainer.fit import fit
from trainer.runs import create_training_run, execute_training_run


@pytest.fixture(scope="module")
def tiny_t5(smollm2_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_t5(smollm2_folder, tmp_path_factory.mktemp("models") / "tiny-t5")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_t5_student_trained_on_twenty_examples_reproduces_them(tiny_t5: Path, tmp_path: Path) -> None:
    examples = short_examples(20)
    settings = config(140, batch_size=20, learning_rate=1e-2, lr_scheduler="constant_with_warmup", save_steps=1000)
    result = fit(settings, tiny_t5, examples, [], tmp_path / "run")
    assert result.steps == 140 and result.tokens_seen > 0
    assert result.train_loss[-1][1] < result.train_loss[0][1] / 10
    outputs = greedy(str(result.model_dir), [e.prompt for e in examples], max_new_tokens=16)
    exact = sum(output == example.completion for output, example in zip(outputs, examples, strict=True))
    assert exact >= 18, list(zip(outputs, [e.completion for e in examples], strict=True))


@pytest.mark.slow
def test_a_t5_training_run_on_a_snapshot_is_evaluated(sqlite_db: Database, tiny_t5: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSeq2SeqLM, T5ForConditionalGeneration

    db = sqlite_db
    ref = reference_snapshot(db)
    settings = TrainConfig(format="ftcot", max_steps=8, batch_size=4, learning_rate=3e-3, save_steps=4)
    with db.transaction() as session:
        run_id = create_training_run(session, ref, str(tiny_t5), settings, output_root=tmp_path / "runs").id
    run = execute_training_run(db, run_id, progress=False)
    assert run.status is TrainingStatus.completed and run.metrics is not None and run.checkpoint_path
    losses = [loss for _, loss in run.metrics["train_loss"]]
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert [step for step, _ in run.metrics["validation_loss"]] == [4, 8]
    assert isinstance(AutoModelForSeq2SeqLM.from_pretrained(run.checkpoint_path), T5ForConditionalGeneration)

    report = evaluate(db, EvalSpec(model=f"run:{run_id}", task="procedural", split="test", max_new_tokens=24))
    assert report.problems == 6 and report.generated == 6


def test_a_t5_student_is_refused_a_search_it_cannot_run(sqlite_db: Database, tiny_t5: Path) -> None:
    with sqlite_db.transaction() as session:
        ingest_procedural(session, count=2, seed=1, split="test")
    for decoding in (Decoding("sample", samples=2), Decoding("step-beam", beams=2, expand=2)):
        spec = EvalSpec(model=str(tiny_t5), task="procedural", split="test", prompt_format="pad", decoding=decoding)
        with pytest.raises(CurationError, match="encoder-decoder student"):
            evaluate(sqlite_db, spec)
    with sqlite_db.read() as session:  # refused before anything was written
        assert session.execute(select(func.count()).select_from(Evaluation)).scalar_one() == 0
