"""Verification jobs: parse generations into rationales, run programs in the sandbox, store labels.

Each batch is read in one transaction, its programs run with no transaction open (a long run
must not hold SQLite's write lock), and its executions and labels are written in one short
transaction. Every write is keyed (executions by rationale and limits, labels by rationale,
verifier and version) and ignores conflicts, so running a job twice, or two workers racing on
the same rationales, adds nothing. A failed or wrong program is a result to store, not an error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from curation.answers.verdict import ANSWER_VERIFIER, PROGRAM_VERIFIER, VERIFIER_VERSION, judge_cot, judge_program
from curation.db.session import Database
from curation.models import RationaleKind, RationaleOrigin
from curation.rationales import kind_for, rationale_body
from curation.repositories import runs as run_repo
from curation.repositories import verification as repo
from workers.sandbox import Limits, Sandbox, SandboxResult

PARSE_BATCH = 2_000
VERIFY_BATCH = 500
VERIFIERS = {RationaleKind.cot: ANSWER_VERIFIER, RationaleKind.program: PROGRAM_VERIFIER}

Progress = Callable[[int], None]


@dataclass
class VerificationReport:
    parsed: int = 0
    executed: int = 0
    reused_executions: int = 0
    labelled: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)


def parse_run(db: Database, run_id: int) -> int:
    """Create the rationale of every successful generation of the run that has none yet."""
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


def _execution_row(rationale_id: int, result: SandboxResult, limits: Limits, limits_hash: str) -> tuple[Any, ...]:
    return (
        rationale_id, result.status.value, result.value, result.value_type, result.error_type,
        result.error_message, result.stdout or None, result.stderr or None, result.output_truncated,
        result.duration_ms, limits.as_dict(), limits_hash,
    )  # fmt: skip


def _verify_batch(
    db: Database,
    sandbox: Sandbox,
    pending: Sequence[repo.PendingRationale],
    limits: Limits,
    version: str,
    report: VerificationReport,
) -> None:
    limits_hash = limits.digest()
    program_ids = [p.rationale_id for p in pending if p.kind is RationaleKind.program]
    with db.read() as session:
        stored = repo.executions_for(session, program_ids, limits_hash) if program_ids else {}
    to_run = [p for p in pending if p.kind is RationaleKind.program and p.rationale_id not in stored]
    results = sandbox.run_many([p.body for p in to_run], limits) if to_run else []
    report.executed += len(to_run)
    report.reused_executions += len(program_ids) - len(to_run)

    with db.transaction() as session:
        repo.insert_executions(
            session,
            [_execution_row(p.rationale_id, r, limits, limits_hash) for p, r in zip(to_run, results, strict=True)],
        )
        # Read back: ids for the labels, and whichever result a racing worker stored first.
        stored = repo.executions_for(session, program_ids, limits_hash) if program_ids else {}
        labels, answers = [], {}
        for p in pending:
            if p.kind is RationaleKind.program:
                execution = stored[p.rationale_id]
                judgement = judge_program(
                    execution.status, execution.value, p.gold_answer, p.answer_type,
                    error_type=execution.error_type, choices=p.choices,
                )  # fmt: skip
                execution_id: int | None = execution.execution_id
            else:
                judgement = judge_cot(
                    p.body, p.gold_answer, p.answer_type, answer_output=p.answer_output, choices=p.choices
                )
                execution_id = None
            labels.append(
                (p.rationale_id, execution_id, VERIFIERS[p.kind], version, judgement.verdict.value,
                 judgement.score, judgement.details)
            )  # fmt: skip
            answers[p.rationale_id] = judgement.answer
            report.verdicts[judgement.verdict.value] += 1
        report.labelled += repo.insert_labels(session, labels)
        repo.set_answers(session, answers)


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
    or, with neither, everything not yet verified by this version.
    """
    report = VerificationReport()
    if run_id is not None:
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
        _verify_batch(db, sandbox, pending, limits, verifier_version, report)
        if progress is not None:
            progress(len(pending))
