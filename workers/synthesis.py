"""Synthesis runs: ask a teacher for D samples per problem, store every answer at once, and hand
each new rationale on to execution (programs) and verification.

Pay-once: a generation is keyed (run, problem, sample index). A generation task first reads which
keys exist and asks the teacher only for the others; every answer is written within a fraction of
a second of arriving (in small batches, one short transaction each), so a crash loses at most the
calls still in flight. Zero-shot-CoT's first stage is stored before its second stage is asked for.
A re-delivered or resumed task therefore never repeats a stored call, and a retried failure
replaces only the failure.

Follow-up work (execute, verify) is sent only after the transaction that created it commits. If a
message is lost anyway (a broker restart without persistence, a worker killed between commit and
send), `resume_run` finds the missing work in the database and sends it again: the database, not
the queue, says what is left to do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from curation.answers.verdict import VERIFIER_VERSION
from curation.db.base import utc_now
from curation.db.session import Database, after_commit
from curation.errors import CurationError, NotFoundError
from curation.models import (
    GenerationStatus,
    ModelRole,
    Problem,
    PromptTemplate,
    RationaleKind,
    RationaleOrigin,
    RunStatus,
    SynthesisRun,
    Task,
)
from curation.rationales import kind_for, rationale_body
from curation.repositories import models as model_repo
from curation.repositories import problems as problem_repo
from curation.repositories import runs as run_repo
from curation.repositories import verification as verification_repo
from curation.templates import CompiledTemplate, ProblemView, Prompt, resolve_template
from workers.sandbox import Limits
from workers.teachers.base import GenerationRequest, GenerationResult, SamplingParams

if TYPE_CHECKING:
    from workers.dispatch import Dispatcher
    from workers.runtime import Runtime

GENERATE, EXECUTE, VERIFY = "curation.generate", "curation.execute", "curation.verify"
DEFAULT_BATCH = 64
FLUSH_SIZE = 256
FLUSH_SECONDS = 0.25
# Kojima et al. extract the answer greedily, and it is short.
ANSWER_STAGE = {"temperature": 0.0, "max_tokens": 32}


@dataclass(frozen=True)
class TeacherSpec:
    """How to reach a teacher: backend ("embedded", "openai", "transformers") and model name or path;
    `parameters` holds the connection options (base_url, api, api_key_env, concurrency, ...)."""

    backend: str
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSpec:
    task: str
    teacher: TeacherSpec
    template: str
    split: str | None = None
    template_version: int | None = None
    samples: int = 1
    temperature: float = 0.0
    top_p: float | None = None
    max_tokens: int | None = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    limit: int | None = None
    offset: int = 0
    name: str | None = None
    batch_size: int = DEFAULT_BATCH
    limits: Limits = field(default_factory=Limits)
    verifier_version: str = VERIFIER_VERSION


def create_run(session: Session, spec: RunSpec) -> SynthesisRun:
    if spec.samples < 1:
        raise CurationError("--samples must be at least 1")
    task = problem_repo.get_task(session, spec.task)
    if task is None:
        raise NotFoundError(f"task {spec.task!r} has no problems: ingest it first")
    if "api_key" in spec.teacher.parameters:
        raise CurationError("never pass an API key itself: name the environment variable that holds it (api_key_env)")
    teacher = model_repo.ensure_model(
        session, role=ModelRole.teacher, backend=spec.teacher.backend, name=spec.teacher.name,
        parameters=spec.teacher.parameters or None,
    )  # fmt: skip
    template = resolve_template(session, spec.template, spec.template_version)
    total = run_repo.count_run_problems(session, task.id, spec.split, spec.offset, spec.limit)
    if total == 0:
        raise CurationError(
            f"no problems to generate for: {spec.task}" + (f" split {spec.split}" if spec.split else "")
        )
    run = SynthesisRun(
        name=spec.name,
        teacher_id=teacher.id,
        template_id=template.id,
        task_id=task.id,
        split=spec.split,
        selection={"offset": spec.offset, "limit": spec.limit},
        samples_per_problem=spec.samples,
        temperature=spec.temperature,
        top_p=spec.top_p,
        max_tokens=spec.max_tokens,
        seed=spec.seed,
        params={
            "stop": list(spec.stop),
            "batch_size": spec.batch_size,
            "limits": spec.limits.as_dict(),
            "verifier_version": spec.verifier_version,
        },
        status=RunStatus.pending,
        problems_total=total,
    )
    session.add(run)
    session.flush()
    return run


def start_run(db: Database, dispatcher: Dispatcher, run_id: int) -> int:
    """Mark the run running and send its generation tasks (after the commit); how many were sent."""
    with db.transaction() as session:
        run = run_repo.get_run(session, run_id)
        if run.status in (RunStatus.completed, RunStatus.cancelled):
            return 0
        run.status = RunStatus.running
        run.started_at = run.started_at or utc_now()
        batches = _batches(
            run_repo.run_problem_ids(session, run), int((run.params or {}).get("batch_size", DEFAULT_BATCH))
        )
        for batch in batches:
            after_commit(session, partial(dispatcher.send, GENERATE, run_id, batch, False))
    return len(batches)


def _batches(ids: Sequence[int], size: int) -> list[list[int]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), max(1, size))]


@dataclass
class ResumeReport:
    generate: int = 0
    execute: int = 0
    verify: int = 0


def resume_run(db: Database, dispatcher: Dispatcher, run_id: int, *, retry_failed: bool = False) -> ResumeReport:
    """Send again whatever work the database says the run still needs. Safe at any time: every
    task skips what is done, so work sent twice is done once."""
    report = ResumeReport()
    with db.transaction() as session:
        run = run_repo.get_run(session, run_id)
        context = _context(session, run)
        if run.status in (RunStatus.completed, RunStatus.failed, RunStatus.cancelled) and not retry_failed:
            return report
        run.status = RunStatus.running
        run.finished_at = None
        run_repo.refresh_counters(session, run_id, context.verifier_version)
        problem_ids = run_repo.run_problem_ids(session, run)
        limits_hash = context.limits.digest()
        for batch in _batches(problem_ids, context.batch_size):
            stored = run_repo.generations_for(session, run_id, batch, two_stage=context.template.two_stage)
            missing = any(
                (pid, s) not in stored
                or (not stored[(pid, s)].complete and stored[(pid, s)].status is GenerationStatus.ok)
                or (retry_failed and stored[(pid, s)].status is GenerationStatus.failed)
                for pid in batch
                for s in range(run.samples_per_problem)
            )
            if missing:
                report.generate += 1
                after_commit(session, partial(dispatcher.send, GENERATE, run_id, batch, retry_failed))
                continue
            unexecuted, unlabelled = verification_repo.unfinished_rationales(
                session, run_id, batch, limits_hash=limits_hash, verifier_version=context.verifier_version
            )
            if unexecuted:
                report.execute += 1
                after_commit(session, partial(dispatcher.send, EXECUTE, run_id, unexecuted))
            ready = sorted(set(unlabelled) - set(unexecuted))
            if ready:
                report.verify += 1
                after_commit(session, partial(dispatcher.send, VERIFY, run_id, ready))
        run_repo.complete_if_done(session, run_id)
    return report


# --- The generation task --------------------------------------------------------------------------


@dataclass
class _RunContext:
    run_id: int
    teacher_id: int
    template: CompiledTemplate
    kind: RationaleKind
    samples: int
    sampling: SamplingParams
    batch_size: int
    limits: Limits
    verifier_version: str


def _context(session: Session, run: SynthesisRun) -> _RunContext:
    template = session.get(PromptTemplate, run.template_id)
    assert template is not None
    params = run.params or {}
    sampling = SamplingParams(
        temperature=run.temperature,
        top_p=run.top_p,
        max_tokens=run.max_tokens,
        stop=tuple(params.get("stop") or ()),
        seed=run.seed,
    )
    return _RunContext(
        run_id=run.id,
        teacher_id=run.teacher_id,
        template=CompiledTemplate(template),
        kind=kind_for(template.style),
        samples=run.samples_per_problem,
        sampling=sampling,
        batch_size=int(params.get("batch_size", DEFAULT_BATCH)),
        limits=Limits.from_dict(params["limits"]) if params.get("limits") else Limits(),
        verifier_version=str(params.get("verifier_version", VERIFIER_VERSION)),
    )


def _problem_views(session: Session, problem_ids: Sequence[int]) -> dict[int, ProblemView]:
    rows = session.execute(
        select(Problem.id, Problem.question, Problem.choices, Task.name, Task.answer_type)
        .join(Task, Task.id == Problem.task_id)
        .where(Problem.id.in_(list(problem_ids)))
    )
    return {pid: ProblemView(q, choices, task, answer_type) for pid, q, choices, task, answer_type in rows}


class _Sink:
    """Stores results as they arrive: every FLUSH_SIZE results or FLUSH_SECONDS, one transaction
    writes the generations (and their rationales, when complete), moves the run's counters, and
    after the commit sends the new rationales on to execution or verification."""

    def __init__(self, db: Database, dispatcher: Dispatcher, context: _RunContext, retry_failed: bool) -> None:
        self.db, self.dispatcher, self.context, self.retry_failed = db, dispatcher, context, retry_failed
        self.first_stage: list[tuple[Any, ...]] = []
        self.answer_stage: list[tuple[int, GenerationResult]] = []
        self.last_flush = time.monotonic()
        self.stored = 0

    def add_first_stage(self, problem_id: int, prompt: Prompt, result: GenerationResult) -> None:
        samples = result.request.samples
        for position, sample in enumerate(samples):
            completion = result.completions[position] if position < len(result.completions) else None
            share = len(samples)  # one call's usage, shared among the samples it produced
            self.first_stage.append((
                self.context.run_id, problem_id, sample,
                GenerationStatus.ok.value if completion else GenerationStatus.failed.value,
                prompt.digest,
                completion.text if completion else None,
                completion.finish_reason if completion else None,
                result.prompt_tokens,
                result.completion_tokens // share if result.completion_tokens else None,
                result.latency_ms,
                result.attempts,
                None if completion else (result.error or "no completion returned"),
            ))  # fmt: skip
        self._maybe_flush()

    def add_answer_stage(self, generation_id: int, result: GenerationResult) -> None:
        self.answer_stage.append((generation_id, result))
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        pending = len(self.first_stage) + len(self.answer_stage)
        if pending >= FLUSH_SIZE or (pending and time.monotonic() - self.last_flush >= FLUSH_SECONDS):
            self.flush()

    def flush(self) -> None:
        if not self.first_stage and not self.answer_stage:
            return
        first, answers = self.first_stage, self.answer_stage
        self.first_stage, self.answer_stage = [], []
        context = self.context
        two_stage = context.template.two_stage
        with self.db.transaction() as session:
            done = failed = 0
            finished: list[tuple[int, int]] = []  # (problem, sample) whose rationale can be made now
            if first:
                status_of = {(row[1], row[2]): row[3] for row in first}
                ours = run_repo.store_generations(session, first)
                replaced = run_repo.replace_failed_generations(session, first) if self.retry_failed else set()
                for key in ours | replaced:
                    ok = status_of[key] == GenerationStatus.ok.value
                    if key in replaced:  # it was counted as failed before
                        failed -= 1
                    if not ok:
                        failed += 1
                    elif not two_stage:
                        finished.append(key)
            for generation_id, result in answers:
                key = cast(tuple[int, int], result.request.key)
                if result.failed or not result.completions:
                    if run_repo.fail_answer_stage(session, generation_id, result.error or "no completion returned"):
                        failed += 1
                elif run_repo.store_answer_stage(
                    session, generation_id, result.completions[0].text, result.prompt_tokens, result.completion_tokens
                ):
                    finished.append(key)
            ids: list[int] = []
            if finished:
                stored = run_repo.generation_ids(session, context.run_id, finished)
                rows = [
                    (pid, stored[(pid, sample)][0], context.teacher_id, sample, context.kind.value,
                     RationaleOrigin.teacher.value, rationale_body(stored[(pid, sample)][1] or "", context.kind))
                    for pid, sample in finished
                ]  # fmt: skip
                verification_repo.insert_rationales(session, rows)
                made = verification_repo.rationale_ids_for_generations(session, [row[1] for row in rows])
                ids = [rid for rid, _ in made]
                done = len(finished)
            run_repo.add_to_counters(session, context.run_id, done=done, failed=failed)
            run_repo.complete_if_done(session, context.run_id)
            if ids:
                task = EXECUTE if context.kind is RationaleKind.program else VERIFY
                after_commit(session, lambda: self.dispatcher.send(task, context.run_id, ids))
        self.stored += len(first) + len(answers)
        self.last_flush = time.monotonic()


def generate_batch(runtime: Runtime, run_id: int, problem_ids: Sequence[int], retry_failed: bool = False) -> int:
    """The generation task: fill in the missing samples of these problems; how many calls it stored."""
    db = runtime.db
    with db.read() as session:
        run = run_repo.get_run(session, run_id)
        if run.status is RunStatus.cancelled:
            return 0
        context = _context(session, run)
        problems = _problem_views(session, problem_ids)
        stored = run_repo.generations_for(session, run_id, problem_ids, two_stage=context.template.two_stage)
    first_stage: list[GenerationRequest] = []
    prompts: dict[int, Prompt] = {}
    for pid in problem_ids:
        wanted = tuple(
            s
            for s in range(context.samples)
            if (pid, s) not in stored or (retry_failed and stored[(pid, s)].status is GenerationStatus.failed)
        )
        if wanted and pid in problems:
            prompts[pid] = context.template.render(problems[pid])
            first_stage.append(GenerationRequest(key=pid, prompt=prompts[pid], samples=wanted))
    sink = _Sink(db, runtime.dispatcher, context, retry_failed)
    if first_stage:
        teacher = runtime.teacher(context.teacher_id)
        for result in teacher.generate(first_stage, context.sampling):
            sink.add_first_stage(int(result.request.key), prompts[int(result.request.key)], result)  # type: ignore[call-overload]
        sink.flush()
    if context.template.two_stage:
        with db.read() as session:
            stored = run_repo.generations_for(session, run_id, problem_ids, two_stage=True)
        second_stage = []
        for (pid, sample), generation in sorted(stored.items()):
            if generation.status is GenerationStatus.ok and not generation.complete and generation.output is not None:
                first_prompt = prompts.get(pid) or context.template.render(problems[pid])
                prompt = context.template.render_answer_stage(problems[pid], first_prompt, generation.output)
                second_stage.append((generation.generation_id, GenerationRequest((pid, sample), prompt, (0,))))
        if second_stage:
            teacher = runtime.teacher(context.teacher_id)
            by_key = {request.key: gid for gid, request in second_stage}
            answer_params = SamplingParams(stop=context.sampling.stop, **ANSWER_STAGE)  # type: ignore[arg-type]
            for result in teacher.generate([r for _, r in second_stage], answer_params):
                sink.add_answer_stage(by_key[result.request.key], result)
            sink.flush()
    if sink.stored == 0:
        # Nothing was missing: this is a re-delivery or a resume. Send on whatever follow-up work
        # of these problems is unfinished, in case the messages for it were lost.
        _resend_followups(db, runtime.dispatcher, context, problem_ids)
    return sink.stored


def _resend_followups(db: Database, dispatcher: Dispatcher, context: _RunContext, problem_ids: Sequence[int]) -> None:
    with db.transaction() as session:
        unexecuted, unlabelled = verification_repo.unfinished_rationales(
            session, context.run_id, problem_ids, limits_hash=context.limits.digest(),
            verifier_version=context.verifier_version,
        )  # fmt: skip
        if unexecuted:
            after_commit(session, lambda: dispatcher.send(EXECUTE, context.run_id, unexecuted))
        ready = sorted(set(unlabelled) - set(unexecuted))
        if ready:
            after_commit(session, lambda: dispatcher.send(VERIFY, context.run_id, ready))


# --- Follow-up tasks --------------------------------------------------------------------------------


def execute_task(runtime: Runtime, run_id: int, rationale_ids: Sequence[int]) -> int:
    """Run the programs in the sandbox and store their executions with their labels."""
    from workers.verification import check_batch

    with runtime.db.read() as session:
        context = _context(session, run_repo.get_run(session, run_id))
    return check_batch(runtime.db, runtime.sandbox(), rationale_ids, context.limits, context.verifier_version).labelled


def verify_task(runtime: Runtime, run_id: int, rationale_ids: Sequence[int]) -> int:
    """Label rationales that need no execution (CoT), or whose programs have run already."""
    from workers.verification import check_batch

    with runtime.db.read() as session:
        context = _context(session, run_repo.get_run(session, run_id))
    return check_batch(runtime.db, None, rationale_ids, context.limits, context.verifier_version).labelled


# --- Progress ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunProgress:
    run_id: int
    status: RunStatus
    expected: int
    generated: int
    failed: int
    labelled: int

    @property
    def done(self) -> bool:
        return self.status in (RunStatus.completed, RunStatus.failed, RunStatus.cancelled)


def run_progress(session: Session, run_id: int) -> RunProgress:
    run = session.execute(
        select(SynthesisRun).where(SynthesisRun.id == run_id).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if run is None:
        raise NotFoundError(f"synthesis run {run_id} does not exist")
    return RunProgress(
        run.id, run.status, run.problems_total * run.samples_per_problem,
        run.generations_done, run.generations_failed, run.rationales_labelled,
    )  # fmt: skip
