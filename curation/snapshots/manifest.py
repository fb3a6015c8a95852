"""What a snapshot's manifest records, and how two versions differ.

The manifest (stored with the snapshot, sealed with it):
- `snapshot`, `content_sha256`, `hash_scheme`, `kind`, `spec` (canonical);
- `counts`: members, problems, and members per task, split, origin and kind;
- `verifiers`: the verifier@version of the labels members were chosen by, with counts;
- `sources`: the synthesis runs members came from, with teacher, template (name, version) and
  sampling settings (samples per problem, temperature, top_p, max_tokens, seed), and how many
  members each gave;
- `contamination`: what the guard refused (or dropped), and the 8-gram overlap report;
- `schema_revision` (Alembic) and `code_version` (the installed package's version).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from curation.models import (
    Generation,
    LanguageModel,
    Problem,
    PromptTemplate,
    Rationale,
    Snapshot,
    SnapshotMember,
    SynthesisRun,
    Task,
)
from curation.snapshots.hashing import SCHEME


def code_version() -> str:
    try:
        return metadata.version("reasoning-curation")
    except metadata.PackageNotFoundError:
        return "unknown"


def schema_revision(session: Session) -> str | None:
    row = session.execute(text("SELECT version_num FROM alembic_version")).first()
    return str(row[0]) if row else None


_RUN_COLUMNS = (
    SynthesisRun.id, SynthesisRun.name, LanguageModel.name, PromptTemplate.name, PromptTemplate.version,
    PromptTemplate.style, SynthesisRun.samples_per_problem, SynthesisRun.temperature, SynthesisRun.top_p,
    SynthesisRun.max_tokens, SynthesisRun.seed, SynthesisRun.source,
)  # fmt: skip


def source_runs(session: Session, snapshot_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(*_RUN_COLUMNS, func.count())
        .select_from(SnapshotMember)
        .join(Rationale, Rationale.id == SnapshotMember.rationale_id)
        .join(Generation, Generation.id == Rationale.generation_id)
        .join(SynthesisRun, SynthesisRun.id == Generation.synthesis_run_id)
        .join(LanguageModel, LanguageModel.id == SynthesisRun.teacher_id)
        .join(PromptTemplate, PromptTemplate.id == SynthesisRun.template_id)
        .where(SnapshotMember.snapshot_id == snapshot_id)
        .group_by(*_RUN_COLUMNS)
        .order_by(SynthesisRun.id)
    ).all()
    return [
        {
            "synthesis_run_id": run_id, "name": name, "teacher": teacher,
            "template": {"name": template, "version": version, "style": str(style)},
            "sampling": {"samples_per_problem": samples, "temperature": temperature, "top_p": top_p,
                         "max_tokens": max_tokens, "seed": seed},
            "source": source, "members": members,
        }
        for run_id, name, teacher, template, version, style, samples, temperature, top_p, max_tokens, seed, source,
        members in rows
    ]  # fmt: skip


def build_manifest(
    session: Session, snapshot: Snapshot, counts: dict[str, Any], contamination: dict[str, Any]
) -> dict[str, Any]:
    verifiers = counts.pop("verifiers", {})
    return {
        "snapshot": snapshot.ref,
        "content_sha256": snapshot.content_sha256,
        "hash_scheme": SCHEME,
        "kind": str(snapshot.kind),
        "spec": snapshot.spec,
        "counts": counts,
        "verifiers": verifiers,
        "sources": source_runs(session, snapshot.id),
        "contamination": contamination,
        "schema_revision": schema_revision(session),
        "code_version": code_version(),
    }


@dataclass
class SnapshotDiff:
    a: str
    b: str
    problems_added: int = 0
    problems_removed: int = 0
    rationales_added: int = 0
    rationales_removed: int = 0
    per_task: dict[str, tuple[int, int]] = field(default_factory=dict)  # task -> (members in a, members in b)
    examples_added: list[int] = field(default_factory=list)
    examples_removed: list[int] = field(default_factory=list)


def _members(session: Session, snapshot_id: int) -> tuple[set[int], set[int], Counter[str]]:
    rows = session.execute(
        select(SnapshotMember.rationale_id, SnapshotMember.problem_id, Task.name)
        .join(Problem, Problem.id == SnapshotMember.problem_id)
        .join(Task, Task.id == Problem.task_id)
        .where(SnapshotMember.snapshot_id == snapshot_id)
    )
    rationales: set[int] = set()
    problems: set[int] = set()
    per_task: Counter[str] = Counter()
    for rationale_id, problem_id, task in rows:
        rationales.add(rationale_id)
        problems.add(problem_id)
        per_task[task] += 1
    return rationales, problems, per_task


def diff_snapshots(session: Session, a: Snapshot, b: Snapshot) -> SnapshotDiff:
    """What b has that a has not, and the reverse (rationales and problems by id, counts per task)."""
    ra, pa, ta = _members(session, a.id)
    rb, pb, tb = _members(session, b.id)
    return SnapshotDiff(
        a=a.ref,
        b=b.ref,
        problems_added=len(pb - pa),
        problems_removed=len(pa - pb),
        rationales_added=len(rb - ra),
        rationales_removed=len(ra - rb),
        per_task={task: (ta[task], tb[task]) for task in sorted(set(ta) | set(tb)) if ta[task] != tb[task]},
        examples_added=sorted(rb - ra)[:10],
        examples_removed=sorted(ra - rb)[:10],
    )
