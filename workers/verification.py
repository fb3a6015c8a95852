"""Verification: parse generations into rationales, run programs in the sandbox, store labels.

The pieces, used by the pipeline's tasks and by `curation verify`:
- `parse_run` turns a run's generations into rationales;
- `check_batch` runs the programs among some rationales that have no execution under the limits
  yet, with no transaction open (a long run must not hold SQLite's write lock), then in one short
  transaction stores the executions and the labels of every rationale in the batch (a program's
  label is a pure function of its execution), keeping the run's counter and completing the run
  when it was the last work left.
Every write is keyed (executions by rationale and limits, labels by rationale, verifier and
version) and ignores conflicts, so a task delivered twice, or two workers racing on the same
rationales, add nothing. A failed or wrong program is a result to store, not an error.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from curation.answers.verdict import VERIFIER_VERSION, judge_cot, judge_program
from curation.db.session import Database
from curation.models import RationaleKind, RationaleOrigin, SynthesisRun
from curation.rationales import kind_for, rationale_body
from curation.repositories import runs as run_repo
from curation.repositories import verification as repo
from workers.sandbox import Limits, Sandbox, SandboxResult

PARSE_BATCH = 2_000
VERIFY_BATCH = 500
VERIFIERS = repo.VERIFIER_BY_KIND
# Students write Fine-tune-CoT's format (` {rationale} --> {answer}`), and so do their refinements.
_STUDENT_ORIGINS = frozenset({RationaleOrigin.student, RationaleOrigin.refinement})

Progress = Callable[[int], None]


@dataclass
class VerificationReport:
    parsed: int = 0
    executed: int = 0
    reused_executions: int = 0
    labelled: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)


def parse_run(db: Database, run_id: int | None) -> int:
    """Create the rationale of every complete generation of the run (of every run, for None) that
    has none yet."""
    if run_id is not None:
        with db.read() as session:
            run_repo.get_run(session, run_id)  # NotFoundError names the run
    created = 0
    while True:
        with db.transaction() as session:
            generations = repo.unparsed_generations(session, run_id, limit=PARSE_BATCH)
            if not generations:
                return created
            rows = []
            for g in generations:
                kind = kind_for(g.style)
                rows.append(
                    (g.problem_id, g.generation_id, g.teacher_id, g.sample_index, kind.value,
                     RationaleOrigin.teacher.value, rationale_body(g.output, kind))
                )  # fmt: skip
            created += repo.insert_rationales(session, rows)


def _execution_rows(
    pending: Sequence[repo.PendingRationale], results: Sequence[SandboxResult], limits: Limits
) -> list[tuple[Any, ...]]:
    limits_dict, limits_hash = limits.as_dict(), limits.digest()
    return [
        (p.rationale_id, r.status.value, r.value, r.value_type, r.error_type, r.error_message, r.stdout or None,
         r.stderr or None, r.output_truncated, r.duration_ms, limits_dict, limits_hash)
        for p, r in zip(pending, results, strict=True)
    ]  # fmt: skip


def _run_programs(
    db: Database,
    sandbox: Sandbox,
    pending: Sequence[repo.PendingRationale],
    limits: Limits,
    report: VerificationReport,
) -> list[tuple[Any, ...]]:
    """Run the programs that have no execution under these limits, with no transaction open; return
    the execution rows to write."""
    program_ids = [p.rationale_id for p in pending if p.kind is RationaleKind.program]
    if not program_ids:
        return []
    with db.read() as session:
        stored = repo.executions_for(session, program_ids, limits.digest())
    to_run = [p for p in pending if p.kind is RationaleKind.program and p.rationale_id not in stored]
    results = sandbox.run_many([p.body for p in to_run], limits) if to_run else []
    report.executed += len(to_run)
    report.reused_executions += len(program_ids) - len(to_run)
    return _execution_rows(to_run, results, limits)


def _store(
    session: Session,
    pending: Sequence[repo.PendingRationale],
    executions: Sequence[tuple[Any, ...]],
    limits: Limits,
    version: str,
    report: VerificationReport,
) -> None:
    """In one transaction: the new executions, then the labels of every pending rationale (a
    program's label is a pure function of its execution, so it is written with it)."""
    if executions:
        repo.insert_executions(session, executions)
    program_ids = [p.rationale_id for p in pending if p.kind is RationaleKind.program]
    # Read back in the writing transaction: ids for the labels, and whichever result a racing worker stored.
    stored = repo.executions_for(session, program_ids, limits.digest()) if program_ids else {}
    by_run: dict[int | None, list[tuple[Any, ...]]] = defaultdict(list)
    answers = {}
    for p in pending:
        if p.kind is RationaleKind.program:
            execution = stored.get(p.rationale_id)
            if execution is None:
                continue  # not executed under these limits yet
            judgement = judge_program(
                execution.status, execution.value, p.gold_answer, p.answer_type,
                error_type=execution.error_type, choices=p.choices,
            )  # fmt: skip
            execution_id: int | None = execution.execution_id
        else:
            judgement = judge_cot(
                p.body, p.gold_answer, p.answer_type, answer_output=p.answer_output, choices=p.choices,
                choice_order=p.choice_order, student=p.origin in _STUDENT_ORIGINS,
            )  # fmt: skip
            execution_id = None
        by_run[p.synthesis_run_id].append(
            (p.rationale_id, execution_id, VERIFIERS[p.kind], version, judgement.verdict.value,
             judgement.score, judgement.details)
        )  # fmt: skip
        answers[p.rationale_id] = judgement.answer
        report.verdicts[judgement.verdict.value] += 1
    for run_id, labels in by_run.items():
        inserted = repo.insert_labels(session, labels)
        report.labelled += inserted
        if run_id is not None and inserted:
            run = session.get(SynthesisRun, run_id)
            if run is not None and (run.params or {}).get("verifier_version", VERIFIER_VERSION) == version:
                run_repo.add_to_counters(session, run_id, labelled=inserted)
                run_repo.complete_if_done(session, run_id)
    repo.set_answers(session, answers)


def _load(db: Database, rationale_ids: Sequence[int], version: str) -> list[repo.PendingRationale]:
    with db.read() as session:
        return repo.pending_rationales(
            session,
            verifier_version=version,
            verifiers=VERIFIERS,
            rationale_ids=rationale_ids,
            limit=len(rationale_ids),
        )


def check_batch(
    db: Database,
    sandbox: Sandbox | None,
    rationale_ids: Sequence[int],
    limits: Limits,
    version: str = VERIFIER_VERSION,
) -> VerificationReport:
    """Execute (programs) and label these rationales, skipping what this version has labelled.

    The execution queue's task passes a sandbox; the verification queue's (CoT, or programs
    already executed under these limits) passes none.
    """
    report = VerificationReport()
    pending = _load(db, rationale_ids, version)
    if not pending:
        return report
    executions = _run_programs(db, sandbox, pending, limits, report) if sandbox is not None else []
    with db.transaction() as session:
        _store(session, pending, executions, limits, version, report)
    return report


def verify(
    db: Database,
    sandbox: Sandbox,
    *,
    run_id: int | None = None,
    rationale_ids: Sequence[int] | None = None,
    limits: Limits | None = None,
    verifier_version: str = VERIFIER_VERSION,
    batch_size: int = VERIFY_BATCH,
    progress: Progress | None = None,
) -> VerificationReport:
    """Label every rationale in scope that has no label from this verifier version yet.

    Scope: one synthesis run (its generations are parsed into rationales first), some rationales,
    or, with neither, everything not yet verified by this version: every run's generations not
    yet parsed (imported ones, say) are parsed first.
    """
    report = VerificationReport()
    if run_id is not None or rationale_ids is None:
        report.parsed = parse_run(db, run_id)
    limits = limits or sandbox.limits
    after_id = 0
    while True:
        with db.read() as session:
            pending = repo.pending_rationales(
                session,
                verifier_version=verifier_version,
                verifiers=VERIFIERS,
                run_id=run_id,
                rationale_ids=rationale_ids,
                after_id=after_id,
                limit=batch_size,
            )
        if not pending:
            return report
        after_id = pending[-1].rationale_id
        executions = _run_programs(db, sandbox, pending, limits, report)
        with db.transaction() as session:
            _store(session, pending, executions, limits, verifier_version, report)
        if progress is not None:
            progress(len(pending))
