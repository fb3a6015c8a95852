"""The main job in embedded mode: the whole loop on one SQLite file, no servers, no network.

Schema, procedural problems with their own reference rationales (verified, and frozen as the
training snapshot `quickstart-train`), the embedded SmolLM2-135M teacher writing PaD-style programs (D
samples per problem at temperature T), each program run in the sandbox, every rationale labelled,
and the quality view over the result. Running it again with the same options reuses everything
already stored; other options make a run of their own. It lives in the CLI, the one place that
wires the domain (`curation/`) to the workers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from curation.db import migrations
from curation.db.session import Database
from curation.ingestion.service import ingest_procedural
from curation.stats import collect_stats

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from curation.models import SynthesisRun
    from workers.synthesis import RunSpec


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
    echo: Callable[[str], object] = print,
) -> str:
    from workers.driver import run_embedded
    from workers.synthesis import RunSpec
    from workers.teachers.embedded_model import EMBEDDED_DESCRIPTION, embedded_teacher_spec, prepare_embedded_model

    migrations.upgrade(db)
    echo(f"schema at revision {migrations.current_revision(db)}")
    with db.transaction() as session:
        train = ingest_procedural(session, count=problems, seed=seed, split="train")
        # A different seed for test keeps the two sets apart; the ingest reports any question that
        # appears in both (by content hash).
        test = ingest_procedural(session, count=max(problems // 4, 1), seed=seed + 1, split="test")
    echo(
        f"procedural problems: train +{train.inserted} (of {train.read}), test +{test.inserted} (of {test.read}); "
        f"train questions repeating a test one: {train.eval_overlap_count + test.eval_overlap_count}"
    )

    echo(_references(db))

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
    with db.read() as session:
        stats = collect_stats(session)
    return (
        f"run #{run_id} {progress.status}: {progress.generated} generated, {progress.failed} failed, "
        f"{progress.labelled} labelled; {stats.total_problems:,} problems stored. "
        f'Next: `curation runs show {run_id}`, `curation sql "SELECT * FROM quality"`'
    )
