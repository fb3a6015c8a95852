"""Commands that say what happened: a run whose teacher never answered fails, with the reason and
a non-zero exit; `runs cancel` refuses a finished run; the quickstart reuses only a run made with
its options; empty files are refused; CSV with a byte-order mark reads as JSONL does; one
whole-word rule for train splits; a warning for identical samples; `verify --run` under the
run's own limits; local-teacher seeds that do not depend on how a batch was composed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, text

from curation.cli.quickstart_job import quickstart_run
from curation.db.session import Database
from curation.errors import InputError
from curation.ingestion.formats import ColumnMapping
from curation.ingestion.readers import read_json_records
from curation.ingestion.service import ingest_files, ingest_procedural
from curation.ingestion.splits import default_purpose, named_split
from curation.models import AnswerType, Problem, RunStatus, SplitPurpose, SynthesisRun
from tests.conftest import ROOT
from workers.sandbox import Limits
from workers.synthesis import RunSpec, create_run
from workers.teachers.base import GenerationRequest, SamplingParams
from workers.teachers.embedded_model import MODEL_NAME, embedded_teacher_spec
from workers.teachers.spec import TeacherSpec


def curation(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from curation.cli.app import main; main()", *args],
        capture_output=True, text=True, cwd=ROOT, env={"CURATION_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        timeout=300,
    )  # fmt: skip


def _url(db: Database) -> str:
    return db.url


def test_eval_warns_that_samples_at_temperature_0_are_identical(sqlite_db: Database) -> None:
    """Best-of-N at temperature 0 decodes greedily N times (the run it names does not exist, so
    it stops right after the warning)."""
    args = ("eval", "--model", "run:999", "--task", "procedural", "--decode", "sample", "--samples", "4")
    warned = curation(*args, "--temperature", "0", url=_url(sqlite_db))
    sampled = curation(*args, "--temperature", "0.8", url=_url(sqlite_db))
    assert "--samples 4 at --temperature 0: greedy decoding gives every sample the same text" in warned.stderr
    assert warned.returncode == sampled.returncode == 2, warned.stdout + warned.stderr
    assert "warning" not in sampled.stderr, sampled.stderr


@pytest.mark.slow
def test_an_unreachable_teacher_fails_the_run_with_the_reason(sqlite_db: Database) -> None:
    with sqlite_db.transaction() as session:
        ingest_procedural(session, count=2, seed=3)
    result = curation(
        "synth", "--task", "procedural", "--teacher", "openai:typo", "--base-url", "http://127.0.0.1:9/v1",
        "--samples", "2", "--request-timeout", "2", url=_url(sqlite_db),
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--samples 2 at --temperature 0" in result.stderr  # and it was warned about
    assert (
        "failed: every sample failed (no teacher call gave an answer); the first error: connection failed"
        in result.stderr
    ), result.stderr
    with sqlite_db.read() as session:
        run = session.execute(select(SynthesisRun)).scalar_one()
    assert (run.status, run.generations_done, run.generations_failed) == (RunStatus.failed, 0, 4)
    shown = curation("runs", "show", str(run.id), url=_url(sqlite_db))
    assert "failed because every sample failed" in shown.stdout, shown.stdout + shown.stderr


def test_cancel_refuses_a_finished_run_and_stops_an_unfinished_one(sqlite_db: Database) -> None:
    with sqlite_db.transaction() as session:
        ingest_procedural(session, count=2, seed=3)
        spec = RunSpec(task="procedural", teacher=TeacherSpec("scripted", "t"), template="pad-program")
        done, pending = create_run(session, spec), create_run(session, spec)
        done.status = RunStatus.completed
        ids = done.id, pending.id
    refused = curation("runs", "cancel", str(ids[0]), url=_url(sqlite_db))
    assert refused.returncode == 2 and f"run {ids[0]} is already completed" in refused.stderr
    cancelled = curation("runs", "cancel", str(ids[1]), url=_url(sqlite_db))
    assert cancelled.returncode == 0, cancelled.stderr
    again = curation("runs", "cancel", str(ids[1]), url=_url(sqlite_db))
    assert again.returncode == 2 and "already cancelled" in again.stderr
    with sqlite_db.read() as session:
        statuses = session.execute(select(SynthesisRun.status).order_by(SynthesisRun.id)).scalars().all()
    assert statuses == [RunStatus.completed, RunStatus.cancelled]


def test_the_quickstart_reuses_only_a_run_made_with_its_options(db: Database) -> None:
    with db.transaction() as session:
        ingest_procedural(session, count=10, seed=0, split="train")

    def spec(samples: int, generate_for: int) -> RunSpec:
        return RunSpec(
            task="procedural", split="train", teacher=embedded_teacher_spec(), template="pad-program",
            samples=samples, temperature=0.7, max_tokens=160, seed=0, limit=generate_for,
            name=f"quickstart seed=0 problems=10 generate-for={generate_for} samples={samples}",
        )  # fmt: skip

    with db.transaction() as session:
        first = quickstart_run(session, spec(2, 4)).id
        again = quickstart_run(session, spec(2, 4)).id
        more_samples = quickstart_run(session, spec(3, 4)).id
        more_problems = quickstart_run(session, spec(2, 6)).id
        session.execute(text("UPDATE synthesis_run SET samples_per_problem = 5 WHERE id = :id"), {"id": first})
        renamed_by_hand = quickstart_run(session, spec(2, 4)).id  # same name, other values
    assert first == again
    assert len({first, more_samples, more_problems, renamed_by_hand}) == 4


@pytest.mark.parametrize(("name", "content"), [("empty.jsonl", ""), ("blank.jsonl", "\n\n"), ("header.csv", "q,a\n")])
def test_an_empty_input_file_is_an_error(sqlite_db: Database, tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    mapping = ColumnMapping(question="q", answer="a")
    with pytest.raises(InputError, match="holds no records"), sqlite_db.transaction() as session:
        ingest_files(session, "mine", [path], answer_type=AnswerType.number, split="train", mapping=mapping)
    with pytest.raises(InputError, match="holds no records"):  # a JSON document with an empty list, too
        (tmp_path / "empty.json").write_text("[]")
        list(read_json_records(tmp_path / "empty.json"))


def test_a_csv_with_a_byte_order_mark_reads_like_jsonl(sqlite_db: Database, tmp_path: Path) -> None:
    csv_path, jsonl_path = tmp_path / "train.csv", tmp_path / "train.jsonl"
    csv_path.write_bytes("\ufeffq,a\nWhat is 2 + 2?,4\n".encode())
    jsonl_path.write_bytes("\ufeff".encode() + json.dumps({"q": "What is 2 + 3?", "a": 5}).encode() + b"\n")
    with sqlite_db.transaction() as session:
        for path in (csv_path, jsonl_path):
            ingest_files(session, f"mine-{path.suffix[1:]}", [path], answer_type=AnswerType.number,
                         mapping=ColumnMapping(question="q", answer="a"))  # fmt: skip
    with sqlite_db.read() as session:
        stored = sorted(session.execute(select(Problem.question, Problem.gold_answer)).all())
    assert stored == [("What is 2 + 2?", "4"), ("What is 2 + 3?", "5")]


@pytest.mark.parametrize(
    ("split", "purpose"),
    [("train", "train"), ("gsm8k-train", "train"), ("train_rand_split", "train"), ("TRAIN", "train"),
     ("trainval", "eval"), ("trained_on_test", "eval"), ("train_test", "eval"), ("training", "eval"),
     ("test", "eval"), ("dev", "eval"), ("pretrain", "eval")],
)  # fmt: skip
def test_train_splits_follow_the_whole_word_rule(split: str, purpose: str) -> None:
    assert default_purpose(split) is SplitPurpose(purpose)
    assert (named_split(split) == "train") is (purpose == "train")


def test_split_names_with_spaces_are_refused(sqlite_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"q": "What is 1 + 1?", "a": 2}) + "\n")
    with pytest.raises(InputError, match="has a space"), sqlite_db.transaction() as session:
        ingest_files(session, "mine", [path], answer_type=AnswerType.number, split="my train",
                     mapping=ColumnMapping(question="q", answer="a"))  # fmt: skip


def test_verify_a_run_uses_the_limits_stored_with_it(sqlite_db: Database) -> None:
    with sqlite_db.transaction() as session:
        ingest_procedural(session, count=2, seed=3)
        spec = RunSpec(
            task="procedural", teacher=TeacherSpec("scripted", "t"), template="pad-program",
            limits=Limits(wall_seconds=0.5, memory_mb=300),
        )  # fmt: skip
        run_id = create_run(session, spec).id
    stored = curation("verify", "--run", str(run_id), url=_url(sqlite_db))
    assert stored.returncode == 0, stored.stderr
    assert "sandbox limits: 0.5 s, 300 MB per program" in stored.stdout
    overridden = curation("verify", "--run", str(run_id), "--timeout", "3", url=_url(sqlite_db))
    assert "sandbox limits: 3 s, 300 MB per program" in overridden.stdout


def test_the_embedded_teacher_is_named_for_what_it_runs() -> None:
    assert embedded_teacher_spec().name == MODEL_NAME == "SmolLM2-135M-Instruct-Q4_1-dequantised"


# --- The local teacher's seeds --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer Llama with random weights and a word-level tokenizer: real generation, small."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<pad>", "<eos>", *(f"w{i}" for i in range(61))]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
    )
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                         pad_token_id=1, eos_token_id=2, bos_token_id=2)  # fmt: skip
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_a_samples_tokens_do_not_depend_on_its_batch(tiny_model: Path) -> None:
    """Samples 2 and 3 asked for alone (a resume) get what they got among samples 0-3 in one batch,
    and in batches of another size."""
    from curation.templates import Prompt
    from workers.teachers.local import LocalTransformersTeacher

    params = SamplingParams(temperature=1.0, max_tokens=12, seed=7)
    prompt = Prompt("w1 w2 w3")

    def texts(batch_size: int, samples: tuple[int, ...]) -> dict[int, str]:
        teacher = LocalTransformersTeacher(str(tiny_model), device="cpu", batch_size=batch_size, chat=False)
        (result,) = teacher.generate([GenerationRequest("p", prompt, samples)], params)
        return {sample: c.text for sample, c in zip(samples, result.completions, strict=True)}

    whole = texts(4, (0, 1, 2, 3))
    assert len(set(whole.values())) > 1, "the samples differ from each other (it samples)"
    assert texts(2, (2, 3)) == {2: whole[2], 3: whole[3]}
    assert texts(1, (3,)) == {3: whole[3]}
    assert texts(3, (0, 1, 2, 3)) == whole
