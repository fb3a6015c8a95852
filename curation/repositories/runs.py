"""Synthesis runs and their generations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, update
from sqlalchemy.orm import Session

from curation.db.base import utc_now
from curation.db.bulk import insert_ignoring_conflicts_returning_keys
from curation.db.dialect import insert_ignoring_conflicts
from curation.errors import CurationError, NotFoundError
from curation.models import Generation, GenerationStatus, Label, Problem, Rationale, RunStatus, SynthesisRun

ALL_FAILED = "every sample failed (no teacher call gave an answer); the first error: "


def get_run(session: Session, run_id: int) -> SynthesisRun:
    run = session.get(SynthesisRun, run_id)
    if run is None:
        raise NotFoundError(f"synthesis run {run_id} does not exist")
    return run


def find_run_by_source(
    session: Session, *, source: str, task_id: int, teacher_id: int, template_id: int
) -> SynthesisRun | None:
    return session.execute(
        select(SynthesisRun)
        .where(
            SynthesisRun.source == source,
            SynthesisRun.task_id == task_id,
            SynthesisRun.teacher_id == teacher_id,
            SynthesisRun.template_id == template_id,
        )
        .order_by(SynthesisRun.id)
        .limit(1)
    ).scalar_one_or_none()


def insert_generations(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Store generations not yet stored under their (run, problem, sample_index); return how many were new."""
    if not rows:
        return 0
    statement = insert_ignoring_conflicts(
        session,
        Generation.__table__,  # type: ignore[arg-type]
        ["synthesis_run_id", "problem_id", "sample_index"],
    ).returning(Generation.id)
    return len(session.execute(statement, rows).all())


# --- What a run still needs -------------------------------------------------------------------------


def _problems_of(task_id: int, split: str | None) -> Any:
    query = select(Problem.id).where(Problem.task_id == task_id)
    return query.where(Problem.split == split) if split is not None else query


def run_problem_ids(session: Session, run: SynthesisRun) -> list[int]:
    """The run's problems in id order: its task (and split), from its offset, at most its limit,
    among the problems that existed when the run was created (problems ingested later do not
    shift a run's batches)."""
    selection = run.selection or {}
    query = _problems_of(run.task_id, run.split).order_by(Problem.id)
    if selection.get("max_problem_id") is not None:
        query = query.where(Problem.id <= int(selection["max_problem_id"]))
    query = query.offset(int(selection.get("offset") or 0))
    if selection.get("limit") is not None:
        query = query.limit(int(selection["limit"]))
    return list(session.execute(query).scalars())


def select_run_problems(
    session: Session, task_id: int, split: str | None, offset: int, limit: int | None
) -> tuple[int, int | None]:
    """For a new run: how many problems it covers, and the newest problem id it may include."""
    counted = _problems_of(task_id, split).subquery()
    count, newest = session.execute(select(func.count(), func.max(counted.c.id)).select_from(counted)).one()
    available = max(0, int(count) - offset)
    return (min(available, limit) if limit is not None else available), newest


@dataclass(frozen=True)
class StoredGeneration:
    generation_id: int
    problem_id: int
    sample_index: int
    status: GenerationStatus
    output: str | None
    complete: bool  # the output, and for two-stage templates the second-stage answer too


def generations_for(
    session: Session, run_id: int, problem_ids: Sequence[int], *, two_stage: bool
) -> dict[tuple[int, int], StoredGeneration]:
    rows = session.execute(
        select(
            Generation.id, Generation.problem_id, Generation.sample_index, Generation.status,
            Generation.output, Generation.answer_output,
        ).where(Generation.synthesis_run_id == run_id, Generation.problem_id.in_(list(problem_ids)))
    )  # fmt: skip
    found = {}
    for gid, pid, index, status, output, answer in rows:
        complete = status is GenerationStatus.ok and (answer is not None or not two_stage)
        found[(pid, index)] = StoredGeneration(gid, pid, index, status, output, complete)
    return found


GENERATION_COLUMNS = (
    "synthesis_run_id", "problem_id", "sample_index", "status", "prompt_hash", "output", "finish_reason",
    "prompt_tokens", "completion_tokens", "latency_ms", "attempts", "error", "choice_order",
)  # fmt: skip


def store_generations(session: Session, rows: Sequence[Sequence[Any]]) -> set[tuple[int, int]]:
    """Rows in GENERATION_COLUMNS order; returns the (problem, sample) keys this call stored.

    A key stored already (by an earlier delivery of the same task, or a racing one) keeps its first
    value: the teacher's answer is paid for once and never replaced by a second one.
    """
    keys = insert_ignoring_conflicts_returning_keys(
        session,
        Generation.__table__,  # type: ignore[arg-type]
        GENERATION_COLUMNS,
        rows,
        ["synthesis_run_id", "problem_id", "sample_index"],
    )
    return {(int(pid), int(sample)) for _run, pid, sample in keys}


def replace_failed_generations(session: Session, rows: Sequence[Sequence[Any]]) -> set[tuple[int, int]]:
    """Retried samples: overwrite stored failures (never a success) with the new results; the keys replaced."""
    replaced = set()
    for row in rows:
        values = dict(zip(GENERATION_COLUMNS, row, strict=True))
        values["attempts"] = Generation.attempts + values["attempts"]
        result = session.execute(
            update(Generation)
            .where(
                Generation.synthesis_run_id == values.pop("synthesis_run_id"),
                Generation.problem_id == values.pop("problem_id"),
                Generation.sample_index == values.pop("sample_index"),
                Generation.status == GenerationStatus.failed,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            replaced.add((int(row[1]), int(row[2])))
    return replaced


def generation_ids(
    session: Session, run_id: int, keys: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], tuple[int, str | None]]:
    """(problem, sample) -> (generation id, output) for these keys of a run."""
    found: dict[tuple[int, int], tuple[int, str | None]] = {}
    wanted = set(keys)
    rows = session.execute(
        select(Generation.problem_id, Generation.sample_index, Generation.id, Generation.output).where(
            Generation.synthesis_run_id == run_id, Generation.problem_id.in_(sorted({k[0] for k in keys}))
        )
    )
    for pid, sample, gid, output in rows:
        if (pid, sample) in wanted:
            found[(pid, sample)] = (gid, output)
    return found


def store_answer_stage(session: Session, generation_id: int, answer: str, prompt_tokens: int | None,
                       completion_tokens: int | None) -> bool:  # fmt: skip
    """The second zero-shot-CoT completion, written once; False if it was already there."""
    result = session.execute(
        update(Generation)
        .where(Generation.id == generation_id, Generation.answer_output.is_(None))
        .values(
            answer_output=answer,
            prompt_tokens=func.coalesce(Generation.prompt_tokens, 0) + (prompt_tokens or 0),
            completion_tokens=func.coalesce(Generation.completion_tokens, 0) + (completion_tokens or 0),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def fail_answer_stage(session: Session, generation_id: int, error: str) -> bool:
    result = session.execute(
        update(Generation)
        .where(
            Generation.id == generation_id,
            Generation.answer_output.is_(None),
            Generation.status == GenerationStatus.ok,
        )
        .values(status=GenerationStatus.failed, error=error)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def add_to_counters(session: Session, run_id: int, *, done: int = 0, failed: int = 0, labelled: int = 0) -> None:
    if done or failed or labelled:
        session.execute(
            update(SynthesisRun)
            .where(SynthesisRun.id == run_id)
            .values(
                generations_done=SynthesisRun.generations_done + done,
                generations_failed=SynthesisRun.generations_failed + failed,
                rationales_labelled=SynthesisRun.rationales_labelled + labelled,
            )
            .execution_options(synchronize_session=False)
        )


def complete_if_done(session: Session, run_id: int) -> bool:
    """End the run once every sample is generated (or failed) and every rationale labelled.

    It ends completed, or failed when every sample failed (every teacher call, or every second
    stage: an unreachable teacher, a wrong base URL), with the first stored error as the reason: a
    run with no generations is no result. A run failed earlier because its work stopped moving
    ends completed too, once that work is done after all. One conditional UPDATE, so of all the
    tasks finishing at once exactly one ends the run. True if this call ended it.
    """
    answered = SynthesisRun.generations_done > 0
    first_error = (
        select(Generation.error)
        .where(Generation.synthesis_run_id == SynthesisRun.id, Generation.status == GenerationStatus.failed)
        .order_by(Generation.id)
        .limit(1)
        .scalar_subquery()
    )
    reason = literal(ALL_FAILED) + func.coalesce(first_error, "(no error stored)")
    result = session.execute(
        update(SynthesisRun)
        .where(
            SynthesisRun.id == run_id,
            or_(SynthesisRun.status == RunStatus.running, and_(SynthesisRun.status == RunStatus.failed, answered)),
            SynthesisRun.generations_done + SynthesisRun.generations_failed
            >= SynthesisRun.problems_total * SynthesisRun.samples_per_problem,
            SynthesisRun.rationales_labelled >= SynthesisRun.generations_done,
        )
        .values(
            status=case((answered, RunStatus.completed.value), else_=RunStatus.failed.value),
            error=case((answered, None), else_=func.substr(reason, 1, 2000)),
            finished_at=utc_now(),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def revive_answer_stage(session: Session, run_id: int, problem_ids: Sequence[int]) -> int:
    """Two-stage retries: a sample whose second stage failed keeps its paid-for first stage, and
    goes back to waiting for the second; how many did (they no longer count as failed)."""
    result = session.execute(
        update(Generation)
        .where(
            Generation.synthesis_run_id == run_id,
            Generation.problem_id.in_(list(problem_ids)),
            Generation.status == GenerationStatus.failed,
            Generation.output.is_not(None),
            Generation.answer_output.is_(None),
        )
        .values(status=GenerationStatus.ok, error=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def cancel_run(session: Session, run_id: int) -> None:
    """Cancel a run that has not finished: one conditional UPDATE, so a run that completes at the
    same moment is not turned into a cancelled one."""
    result = session.execute(
        update(SynthesisRun)
        .where(SynthesisRun.id == run_id, SynthesisRun.status.not_in([RunStatus.completed, RunStatus.cancelled]))
        .values(status=RunStatus.cancelled, finished_at=utc_now())
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        run = get_run(session, run_id)  # NotFoundError names a run that does not exist
        raise CurationError(f"run {run_id} is already {run.status.value}: there is nothing to cancel")


def fail_run(session: Session, run_id: int, error: str) -> None:
    session.execute(
        update(SynthesisRun)
        .where(SynthesisRun.id == run_id, SynthesisRun.status == RunStatus.running)
        .values(status=RunStatus.failed, error=error[:2000], finished_at=utc_now())
        .execution_options(synchronize_session=False)
    )


def refresh_counters(session: Session, run_id: int, verifier_version: str, *, two_stage: bool) -> None:
    """Recount a run's counters from the tables (after a crash, or work done outside the pipeline).

    A two-stage sample counts as done once its second stage is stored, as the tasks count it.
    """
    done_condition = Generation.status == GenerationStatus.ok
    if two_stage:
        done_condition = done_condition & Generation.answer_output.is_not(None)
    done = session.execute(
        select(func.count(Generation.id)).where(Generation.synthesis_run_id == run_id, done_condition)
    ).scalar_one()
    failed = session.execute(
        select(func.count(Generation.id)).where(
            Generation.synthesis_run_id == run_id, Generation.status == GenerationStatus.failed
        )
    ).scalar_one()
    labelled = session.execute(
        select(func.count(func.distinct(Label.rationale_id)))
        .join(Rationale, Rationale.id == Label.rationale_id)
        .join(Generation, Generation.id == Rationale.generation_id)
        .where(Generation.synthesis_run_id == run_id, Label.verifier_version == verifier_version)
    ).scalar_one()
    session.execute(
        update(SynthesisRun)
        .where(SynthesisRun.id == run_id)
        .values(generations_done=done, generations_failed=failed, rationales_labelled=labelled)
        .execution_options(synchronize_session=False)
    )
