"""The trainer on CPU with a tiny random Llama and the SmolLM2 tokenizer: it learns what it is
shown, a run killed with SIGKILL resumes on the same loss curve, and validation is carved by
problem."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.train_script import config, short_examples
from trainer.decoding.greedy import greedy
from trainer.fit import fit, last_complete_checkpoint
from trainer.packing import Example
from trainer.validation import carve_validation
from workers.teachers.embedded_model import prepare_embedded_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_student_trained_on_twenty_examples_reproduces_them(tiny_student: Path, tmp_path: Path) -> None:
    examples = short_examples(20)
    settings = config(140, batch_size=20, learning_rate=1e-2, lr_scheduler="constant_with_warmup", save_steps=1000)
    result = fit(settings, tiny_student, examples, [], tmp_path / "run")
    assert result.steps == 140 and result.tokens_seen > 0 and result.tokens_per_second > 0
    assert result.train_loss[-1][1] < result.train_loss[0][1] / 10
    outputs = greedy(str(result.model_dir), [e.prompt for e in examples], max_new_tokens=16)
    exact = sum(output == example.completion for output, example in zip(outputs, examples, strict=True))
    assert exact >= 18, list(zip(outputs, [e.completion for e in examples], strict=True))


def _train(base: Path, run_dir: Path, steps: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.train_script", str(base), str(run_dir), str(steps), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def _finish(process: subprocess.Popen[str]) -> dict[str, object]:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return dict(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_run_killed_mid_way_resumes_on_the_same_loss_curve(tiny_student: Path, tmp_path: Path) -> None:
    steps = 30
    reference = _finish(_train(tiny_student, tmp_path / "straight", steps))
    interrupted = tmp_path / "interrupted"
    process = _train(tiny_student, interrupted, steps)
    deadline = time.monotonic() + 300
    while not (interrupted / "checkpoints" / "checkpoint-15" / "trainer_state.json").is_file():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (interrupted / "model").exists()
    resumed = _finish(_train(tiny_student, interrupted, steps))
    assert str(resumed["resumed_from"]).endswith("checkpoint-15") or str(resumed["resumed_from"]).endswith(
        ("checkpoint-20", "checkpoint-25")
    )
    straight = dict((int(s), float(v)) for s, v in reference["train_loss"])  # type: ignore[attr-defined]
    again = dict((int(s), float(v)) for s, v in resumed["train_loss"])  # type: ignore[attr-defined]
    assert sorted(again) == list(range(1, steps + 1))
    for step in range(1, steps + 1):
        assert again[step] == pytest.approx(straight[step], rel=1e-4, abs=1e-5), step


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_run_killed_while_saving_resumes_from_the_checkpoint_before(tiny_student: Path, tmp_path: Path) -> None:
    """Deterministic: the process kills itself while writing checkpoint-20 (weights and optimizer
    on disk, trainer_state.json not), so the resume must take checkpoint-15."""
    steps = 30
    reference = _finish(_train(tiny_student, tmp_path / "straight", steps))
    interrupted = tmp_path / "interrupted"
    process = _train(tiny_student, interrupted, steps, "20")
    _, err = process.communicate(timeout=600)
    assert process.returncode == -signal.SIGKILL, err[-3000:]
    half = interrupted / "checkpoints" / "checkpoint-20"
    assert half.is_dir() and not (half / "trainer_state.json").exists()
    assert (interrupted / "checkpoints" / "checkpoint-15" / "trainer_state.json").is_file()
    resumed = _finish(_train(tiny_student, interrupted, steps))
    assert str(resumed["resumed_from"]).endswith("checkpoint-15")
    straight = dict((int(s), float(v)) for s, v in reference["train_loss"])  # type: ignore[attr-defined]
    again = dict((int(s), float(v)) for s, v in resumed["train_loss"])  # type: ignore[attr-defined]
    assert sorted(again) == list(range(1, steps + 1))
    for step in range(1, steps + 1):
        assert again[step] == pytest.approx(straight[step], rel=1e-4, abs=1e-5), step
    assert (half / "trainer_state.json").is_file(), "written again when the resumed run got there"


def test_a_resume_skips_a_checkpoint_whose_save_was_cut_short(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "checkpoints"
    assert last_complete_checkpoint(folder) is None
    for step in (5, 10, 20, 30):
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        (folder / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"weights")
    for step in (5, 10):
        (folder / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (folder / "checkpoint-30" / "trainer_state.json").write_text('{"global_st')  # killed mid-write
    (folder / "checkpoint-40").write_text("not a folder")
    (folder / "checkpoint-50.tmp").mkdir()
    with caplog.at_level("WARNING", logger="trainer.fit"):
        assert last_complete_checkpoint(folder) == str(folder / "checkpoint-10")
    skipped = " ".join(r.getMessage() for r in caplog.records)
    assert "checkpoint-20" in skipped and "checkpoint-30" in skipped and "checkpoint-10" not in skipped


def test_validation_is_carved_by_problem_and_deterministically() -> None:
    examples = [Example(f"q{p}", f" r{s}", problem_id=p) for p in range(50) for s in range(3)]
    train, validation = carve_validation(examples, 0.2)
    assert (train, validation) == carve_validation(list(examples), 0.2)
    held = {e.problem_id for e in validation}
    assert held and not held & {e.problem_id for e in train}
    assert all(sum(e.problem_id == p for e in validation) == 3 for p in held)
    assert 3 <= len(held) <= 20
    assert carve_validation(examples, 0.0) == (examples, [])
    capped_train, capped = carve_validation(examples, 0.5, max_problems=2)
    assert len({e.problem_id for e in capped}) == 2 and len(capped_train) + len(capped) == len(examples)
    assert {e.problem_id for e in capped} <= {e.problem_id for e in carve_validation(examples, 0.5)[1]}


def test_the_bundled_model_is_an_ordinary_trainable_folder(smollm2_folder: Path, tmp_path: Path) -> None:
    """Its weights are de-quantised fp32: a config still naming the GGUF quantisation made the
    Trainer refuse to fine-tune it ("purely quantized models"), and the quickstart's training failed."""
    from transformers import AutoConfig, AutoModelForCausalLM

    assert getattr(AutoConfig.from_pretrained(smollm2_folder), "quantization_config", None) is None
    assert not getattr(AutoModelForCausalLM.from_pretrained(smollm2_folder), "is_quantized", False)
    # A folder converted before the fix is repaired when it is next prepared.
    old = tmp_path / "old"
    shutil.copytree(smollm2_folder, old)
    config = json.loads((old / "config.json").read_text())
    config["quantization_config"] = {"dequantize": False, "gguf_file": "x.gguf", "quant_method": "gguf"}
    (old / "config.json").write_text(json.dumps(config))
    prepare_embedded_model(old)
    assert "quantization_config" not in json.loads((old / "config.json").read_text())
