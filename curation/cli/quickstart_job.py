"""The main job in embedded mode: the whole loop on one SQLite file, no servers, no network.

Schema, procedural problems with their own reference rationales (verified, and frozen as the
training snapshot `quickstart-train`), the embedded SmolLM2-135M teacher writing PaD-style programs (D
samples per problem at temperature T), each program run in the sandbox, every rationale labelled,
and the quality view over the result. Running it again with the same options reuses everything
already stored; other options make a run of their own. It lives in the CLI, the one place that
wires the domain (`curation/`) to the workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from curation.db import migrations
from curation.db.session import Database
from curation.ingestion.service import ingest_procedural
from curation.stats import collect_stats

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from curation.models import SynthesisRun
    from workers.synthesis import RunSpec


class Stopwatch:
    """Wall time per stage, printed at the end: the quickstart promises a run of minutes, and a
    user whose machine is slower should see which stage it is."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, float]] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stages.append((name, time.perf_counter() - started))

    def line(self) -> str:
        total = sum(seconds for _, seconds in self.stages)
        parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in self.stages)
        return f"time: {parts}; {total / 60:.1f} min in all"


# The student stage's settings, chosen by measurement on two CPU cores (see the README).
BATCH_SIZE = 4
LEARNING_RATE = 2e-4
MAX_NEW_TOKENS = 96  # the reference programs take at most 67 tokens


def quickstart_run(session: Session, spec: RunSpec) -> SynthesisRun:
    """The run these very options made before (the name says them; the stored values are checked
    too, for a run named so by hand), or a new one: other options never reuse a run."""
    from sqlalchemy import select

    from curation.models import SynthesisRun
    from workers.synthesis import create_run

    candidates = session.execute(select(SynthesisRun).where(SynthesisRun.name == spec.name)).scalars()
    return next((run for run in candidates if _made_with(run, spec)), None) or create_run(session, spec)


def _made_with(run: SynthesisRun, spec: RunSpec) -> bool:
    selection = run.selection or {}
    return (
        run.samples_per_problem == spec.samples
        and run.seed == spec.seed
        and run.temperature == spec.temperature
        and run.max_tokens == spec.max_tokens
        and run.split == spec.split
        and selection.get("limit") == spec.limit
        and int(selection.get("offset") or 0) == spec.offset
    )


def _references(db: Database) -> str:
    """The procedural problems' own CoT and programs as a verified reference run, frozen as the
    snapshot `quickstart-train`: training data that does not depend on the bundled teacher."""
    from curation.references import import_procedural_references
    from curation.snapshots.create import create_snapshot
    from workers.sandbox import Limits, Sandbox
    from workers.verification import verify

    with db.transaction() as session:
        report = import_procedural_references(session)
    with Sandbox(Limits()) as sandbox:
        verified = verify(db, sandbox, run_id=report.run_id)
    with db.transaction() as session:
        snapshot, _ = create_snapshot(session, "quickstart-train", {"tasks": ["procedural"], "splits": ["train"]})
        ref, members = snapshot.ref, snapshot.row_count
    correct = verified.verdicts.get("correct", 0)
    return (
        f"reference rationales: run #{report.run_id}, {report.new_rationales} new, {verified.labelled} labelled "
        f"({correct} correct); training snapshot {ref}: {members} members"
    )


def run_quickstart(
    db: Database,
    *,
    problems: int = 200,
    generate_for: int = 4,
    samples: int = 2,
    seed: int = 0,
    train_steps: int = 80,
    eval_problems: int = 50,
    echo: Callable[[str], object] = print,
) -> str:
    from workers.driver import run_embedded
    from workers.synthesis import RunSpec
    from workers.teachers.embedded_model import EMBEDDED_DESCRIPTION, embedded_teacher_spec, prepare_embedded_model

    clock = Stopwatch()
    with clock.stage("problems and references"):
        migrations.upgrade(db)
        echo(f"schema at revision {migrations.current_revision(db)}")
        with db.transaction() as session:
            train = ingest_procedural(session, count=problems, seed=seed, split="train")
            # A different seed for test keeps the two sets apart; the ingest reports any question that
            # appears in both (by content hash).
            test = ingest_procedural(session, count=max(problems // 4, 1), seed=seed + 1, split="test")
        overlap = train.eval_overlap_count + test.eval_overlap_count
        echo(
            f"procedural problems: train +{train.inserted} (of {train.read}), test +{test.inserted} "
            f"(of {test.read}); train questions repeating a test one: {overlap}"
        )
        echo(_references(db))

    with clock.stage("teacher"):
        echo(f"preparing the embedded teacher ({EMBEDDED_DESCRIPTION})")
        prepare_embedded_model()
        spec = RunSpec(
            task="procedural", split="train", teacher=embedded_teacher_spec(), template="pad-program",
            samples=samples, temperature=0.7, max_tokens=160, seed=seed, limit=generate_for,
            name=f"quickstart seed={seed} problems={problems} generate-for={generate_for} samples={samples}",
        )  # fmt: skip
        with db.transaction() as session:
            run_id = quickstart_run(session, spec).id
        echo(f"run #{run_id}: {generate_for} problems x {samples} samples, generated, executed and verified here")
        progress = run_embedded(db, run_id)
        echo(
            f"run #{run_id} {progress.status}: {progress.generated} generated, {progress.failed} failed, "
            f"{progress.labelled} labelled"
        )
    if train_steps <= 0:
        with db.read() as session:
            stats = collect_stats(session)
        return (
            f"{stats.total_problems:,} problems stored. {clock.line()}\n"
            f'Next: `curation runs show {run_id}`, `curation sql "SELECT * FROM quality"`'
        )
    return _student(db, clock, train_steps=train_steps, eval_problems=eval_problems, seed=seed, echo=echo)


def _student(
    db: Database, clock: Stopwatch, *, train_steps: int, eval_problems: int, seed: int, echo: Callable[[str], object]
) -> str:
    """The bundled model evaluated before and after a short fine-tune on the reference programs
    (`_references` stored and verified them), and the report. Programs, as PaD argues: a 135M
    student cannot multiply three-digit numbers in its head, but it can learn to write the
    program, and the sandbox does the arithmetic (a CoT student of the same budget learned the
    format and still got the sums wrong)."""
    from curation.settings import get_settings
    from curation.snapshots.create import create_snapshot
    from trainer.config import TrainConfig
    from trainer.evaluation import EvalSpec, evaluate
    from trainer.report import collect_report, write_plots
    from trainer.runs import create_training_run, execute_training_run

    with db.transaction() as session:
        # Programs only, one per problem (quickstart-train mixes in the CoT rationales).
        snapshot, created = create_snapshot(
            session, "quickstart-train-pad",
            {"tasks": ["procedural"], "splits": ["train"], "origins": ["reference"], "kinds": ["program"],
             "max_per_problem": 1},
        )  # fmt: skip
        ref = f"{snapshot.name}@{snapshot.version}"
    echo(f"snapshot {ref}: {snapshot.row_count} reference programs ({'new' if created else 'reused'})")
    spec = EvalSpec(
        model="embedded", task="procedural", split="test", limit=eval_problems, prompt_format="pad",
        max_new_tokens=MAX_NEW_TOKENS,
    )  # fmt: skip
    with clock.stage("evaluation before"):
        before = evaluate(db, spec, echo=echo)
    echo(f"before training: {before.line()}")
    config = TrainConfig(
        format="pad", max_steps=train_steps, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, warmup_ratio=0.1,
        seed=seed, max_length=512, validation_fraction=0.1, save_steps=max(train_steps // 2, 1), save_total_limit=1,
    )  # fmt: skip
    with db.transaction() as session:
        training_id = create_training_run(session, ref, "embedded", config).id
    echo(f"training run #{training_id}: {train_steps} steps of SmolLM2-135M on {ref} (CPU, fp32)")
    with clock.stage("training"):
        execute_training_run(db, training_id)
    with clock.stage("evaluation after"):
        after = evaluate(db, replace(spec, model=f"run:{training_id}"), echo=echo)
    echo(f"after training: {after.line()}")
    with db.read() as session:
        report = collect_report(session)
    folder = get_settings().data_dir / "report"
    write_plots(report, folder)
    return (
        f"accuracy on {after.problems} held-out procedural problems: {before.accuracy:.1%} before training, "
        f"{after.accuracy:.1%} after {train_steps} steps. Report: `curation report` (plots in {folder.resolve()}).\n"
        f"{clock.line()}\n"
        "This was a small demonstration on a CPU: a 135M teacher, a few problems, a short fine-tune. A real run:\n"
        "  curation synth --task gsm8k --split train --teacher openai:Qwen/Qwen2.5-7B-Instruct "
        "--base-url http://gpu-box:8000/v1 --template pad-program --samples 8 --temperature 0.7\n"
        "  curation snapshot create gsm8k-pad --task gsm8k --split train --kind program\n"
        "  curation train --snapshot gsm8k-pad@1 --base-model PATH --format pad --epochs 3   # on a GPU worker\n"
        "  curation eval --model run:ID --task gsm8k --split test && curation report"
    )
