"""End to end against a real OpenAI-compatible server: `transformers serve` on localhost, serving
the bundled SmolLM2-135M. Five GSM8K problems, D = 2, the PaD program prompt: ten generations
stored, their programs run in the sandbox, all labelled."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from curation.db.session import Database
from curation.ingestion.service import ingest_files
from curation.models import RunStatus
from workers.driver import run_embedded
from workers.synthesis import RunSpec, create_run
from workers.teachers.spec import TeacherSpec


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(executable: Path, folder: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`transformers serve` on a probed free port, its output in `log` (a pipe nobody reads would
    stop the server once 64 KiB of log filled it); the base URL once /health answers. A port taken
    by another process before the server bound it means starting again on another."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for _ in range(3):
        port = _free_port()
        with log.open("wb") as output:
            process = subprocess.Popen(
                [str(executable), "serve", str(folder), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                stdout=subprocess.DEVNULL, stderr=output, env=environment,
            )  # fmt: skip
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while process.poll() is None:
            try:
                if httpx.get(f"{base_url}/health", timeout=5).status_code == 200:
                    return process, base_url
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise RuntimeError(f"transformers serve did not start within 120 s: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        if "address already in use" not in log.read_text(errors="replace").lower():
            break
    raise RuntimeError(f"transformers serve exited: {log.read_text(errors='replace')[-2000:]}")


@pytest.fixture(scope="module")
def served_model(smollm2_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    executable = Path(sys.executable).with_name("transformers")
    process, base_url = _start(executable, smollm2_folder, tmp_path_factory.mktemp("serve") / "serve.log")
    try:
        yield f"{base_url}/v1", str(smollm2_folder)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_pad_run_against_transformers_serve(
    sqlite_db: Database, shared_data: Path, served_model: tuple[str, str]
) -> None:
    base_url, model = served_model
    db = sqlite_db
    with db.transaction() as session:
        ingest_files(session, "gsm8k", [shared_data / "gsm8k/test.jsonl"])
        run = create_run(
            session,
            RunSpec(
                task="gsm8k", split="test", limit=5, samples=2, temperature=0.7, max_tokens=96, seed=0,
                stop=("\nQuestion:",), template="pad-program",
                # The model field must be the folder `transformers serve` was given; it ignores n,
                # so the backend falls back to one request per sample.
                teacher=TeacherSpec("openai", model, {"base_url": base_url, "api": "completions",
                                                      "concurrency": 2, "request_timeout": 120}),
            ),
        )  # fmt: skip
    final = run_embedded(db, run.id)
    assert (final.status, final.generated, final.failed, final.labelled) == (RunStatus.completed, 10, 0, 10)
    with db.read() as session:
        rows = session.execute(
            text(
                "SELECT g.output, g.prompt_tokens, g.completion_tokens, g.latency_ms, e.status, l.verdict "
                "FROM generation g JOIN rationale r ON r.generation_id = g.id "
                "JOIN execution e ON e.rationale_id = r.id JOIN label l ON l.rationale_id = r.id"
            )
        ).all()
    assert len(rows) == 10
    assert all(r.output and r.prompt_tokens and r.completion_tokens and r.latency_ms > 0 for r in rows)
    assert {r.verdict for r in rows} <= {"correct", "incorrect", "unparseable", "error"}
    assert any("def solution" in r.output for r in rows)  # the model keeps PaD's format


@pytest.mark.slow
def test_zero_shot_cot_against_transformers_serve_asks_completions_for_both_stages(
    sqlite_db: Database, shared_data: Path, served_model: tuple[str, str]
) -> None:
    """No --api given: a two-stage template asks the completions endpoint, where the second stage
    is the first one's text continued (`transformers serve` refuses chat continuation fields)."""
    base_url, model = served_model
    db = sqlite_db
    with db.transaction() as session:
        ingest_files(session, "gsm8k", [shared_data / "gsm8k/test.jsonl"])
        run = create_run(
            session,
            RunSpec(
                task="gsm8k", split="test", limit=2, max_tokens=48, template="zero-shot-cot",
                teacher=TeacherSpec("openai", model, {"base_url": base_url, "concurrency": 2, "request_timeout": 120}),
            ),
        )  # fmt: skip
        assert run.params is not None and run.params["teacher"]["api"] == "completions"
    final = run_embedded(db, run.id)
    assert (final.status, final.generated, final.failed, final.labelled) == (RunStatus.completed, 2, 0, 2)
    with db.read() as session:
        rows = session.execute(text("SELECT output, answer_output FROM generation")).all()
    assert all(r.output and r.answer_output is not None for r in rows)


@pytest.mark.slow
def test_the_local_teacher_continues_the_assistant_turn(smollm2_folder: Path) -> None:
    from curation.templates import Prompt
    from workers.teachers.base import GenerationRequest, SamplingParams
    from workers.teachers.local import LocalTransformersTeacher

    teacher = LocalTransformersTeacher(str(smollm2_folder), device="cpu")
    first = "Q: Sam has 3 apples and buys 4 more. How many apples?\nA: Let's think step by step."
    stage_two = Prompt(first + " 3 + 4 = 7.\nTherefore, the answer (arabic numerals) is", continues_at=len(first))
    rendered = teacher._text(GenerationRequest("k", stage_two))
    assert rendered.endswith("<|im_start|>assistant\n 3 + 4 = 7.\nTherefore, the answer (arabic numerals) is")
    assert teacher._text(GenerationRequest("k", Prompt(first))).endswith("<|im_start|>assistant\n")
    (result,) = teacher.generate([GenerationRequest("k", stage_two)], SamplingParams(max_tokens=6))
    assert not result.failed and result.completions[0].text
