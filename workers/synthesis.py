"""Synthesis runs: ask a teacher for D samples per problem, store every answer at once, and hand
each new rationale on to execution (programs) and verification.

Pay-once: a generation is keyed (run, problem, sample index). A generation task first reads which
keys exist and asks the teacher only for the others; every answer is written within a fraction of
a second of arriving (in small batches, one short transaction each), so a crash loses at most the
calls still in flight. Zero-shot-CoT's first stage is stored before its second stage is asked for.
A re-delivered or resumed task therefore never repeats a stored call, and a retried failure
replaces only the failure (for zero-shot-CoT, only the failed stage).

Concurrent duplicates (a message redelivered while its first delivery still runs, a resume sent
then) are kept apart by batch leases: a generation task claims its batch before asking the
teacher, and a second task for the same batch waits until the claim is released or runs out.

Follow-up work (execute, verify) is sent only after the transaction that created it commits. If a
message is lost anyway (a broker restart without persistence, a worker killed between commit and
send), `resume_run` finds the missing work in the database and sends it again: the database, not
the queue, says what is left to do.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from curation.answers.verdict import VERIFIER_VERSION
from curation.db.base import utc_now
from curation.db.session import Database, after_commit
from curation.db.text import storable
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
    TemplateStyle,
)
from curation.rationales import kind_for, rationale_body
from curation.repositories import leases as lease_repo
from curation.repositories import models as model_repo
from curation.repositories import problems as problem_repo
from curation.repositories import runs as run_repo
from curation.repositories import verification as verification_repo
from curation.settings import get_settings
from curation.templates import CompiledTemplate, ProblemView, Prompt, default_stop, resolve_template
from workers.batch_lease import Lease, batch_key
from workers.renewed_lease import known_dead
from workers.runtime import Runtime
from workers.sandbox import Limits
from workers.task_contract import Dispatcher
from workers.teachers.base import GenerationRequest, GenerationResult, SamplingParams
from workers.teachers.registry import OPENAI
from workers.teachers.spec import TeacherSpec
from workers.verification import check_batch

log = logging.getLogger(__name__)

GENERATE, EXECUTE, VERIFY = "curation.generate", "curation.execute", "curation.verify"
DEFAULT_BATCH = 64
FLUSH_SIZE = 256
FLUSH_SECONDS = 0.25
# Kojima et al. extract the answer greedily, and it is short.
ANSWER_STAGE = {"temperature": 0.0, "max_tokens": 32}


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
    stop: tuple[str, ...] | None = None  # None: the template style's default (templates.default_stop)
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
        session, role=ModelRole.teacher, backend=spec.teacher.backend, name=spec.teacher.name
    )
    template = resolve_template(session, spec.template, spec.template_version)
    teacher_options = dict(spec.teacher.parameters)
    if spec.teacher.backend == OPENAI and "api" not in teacher_options:
        # A second stage continues the first's text: a completions endpoint takes it as it is.
        teacher_options["api"] = "completions" if template.answer_text is not None else "chat"
    total, newest = run_repo.select_run_problems(session, task.id, spec.split, spec.offset, spec.limit)
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
        selection={"offset": spec.offset, "limit": spec.limit, "max_problem_id": newest},
        samples_per_problem=spec.samples,
        temperature=spec.temperature,
        top_p=spec.top_p,
        max_tokens=spec.max_tokens,
        seed=spec.seed,
        params={
            "teacher": teacher_options,
            "stop": list(spec.stop if spec.stop is not None else default_stop(template.style)),
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
    leased: int = 0  # batches another task is generating now, left to it
    queued: int = 0  # batches whose work the broker still holds a message for, left to it

    @property
    def sent(self) -> int:
        return self.generate + self.execute + self.verify


@dataclass(frozen=True)
class QueuedWork:
    """What a run's messages on the broker already ask for (waiting in a queue, or held by a live
    worker): the generation batches (by batch key) and the rationales sent to execution or
    verification. `resume_run` sends none of it again."""

    batches: frozenset[str] = frozenset()
    rationales: frozenset[int] = frozenset()


def resume_run(
    db: Database,
    dispatcher: Dispatcher,
    run_id: int,
    *,
    retry_failed: bool = False,
    queued: QueuedWork | None = None,
) -> ResumeReport:
    """Send again whatever work the database says the run still needs, less what `queued` says a
    message on the broker asks for already. Safe at any time: every task skips what is done, so
    work sent twice is done once.

    A completed or cancelled run is left alone unless `retry_failed` (a completed run's failed
    samples are then asked again). The scan reads; only the short status update at the end writes.
    """
    queued = queued or QueuedWork()
    report = ResumeReport()
    sends: list[tuple[str, tuple[Any, ...]]] = []
    with db.read() as session:
        run = run_repo.get_run(session, run_id)
        if run.status in (RunStatus.completed, RunStatus.cancelled) and not retry_failed:
            return report
        template = session.get(PromptTemplate, run.template_id)
        if template is not None and template.style is TemplateStyle.student:
            return report  # an evaluation's run: rerunning `curation eval` resumes it, no worker does
        context = _context(session, run)
        limits_hash = context.limits.digest()
        live = lease_repo.live_batches(session, run_id)
        for batch in _batches(run_repo.run_problem_ids(session, run), context.batch_size):
            key = batch_key(batch)
            if key in queued.batches:
                report.queued += 1
                continue
            holder = live.get(key)
            if holder is not None and not known_dead(holder):
                report.leased += 1
                continue
            stored = run_repo.generations_for(session, run_id, batch, two_stage=context.template.two_stage)
            missing = any(
                (pid, s) not in stored
                or (not stored[(pid, s)].complete and stored[(pid, s)].status is GenerationStatus.ok)
                or (retry_failed and stored[(pid, s)].status is GenerationStatus.failed)
                for pid in batch
                for s in range(context.samples)
            )
            if missing:
                report.generate += 1
                sends.append((GENERATE, (run_id, batch, retry_failed)))
                continue
            unexecuted, unlabelled = verification_repo.unfinished_rationales(
                session, run_id, batch, limits_hash=limits_hash, verifier_version=context.verifier_version
            )
            if queued.rationales:
                unexecuted = [rid for rid in unexecuted if rid not in queued.rationales]
                unlabelled = [rid for rid in unlabelled if rid not in queued.rationales]
            if unexecuted:
                report.execute += 1
                sends.append((EXECUTE, (run_id, unexecuted)))
            ready = sorted(set(unlabelled) - set(unexecuted))
            if ready:
                report.verify += 1
                sends.append((VERIFY, (run_id, ready)))
    with db.transaction() as session:
        run = run_repo.get_run(session, run_id)
        if run.status is RunStatus.cancelled and not retry_failed:
            return ResumeReport()  # cancelled while we looked
        run.status = RunStatus.running
        run.finished_at = None
        run.error = None
        run_repo.refresh_counters(session, run_id, context.verifier_version, two_stage=context.template.two_stage)
        for task, args in sends:
            after_commit(session, partial(dispatcher.send, task, *args))
        session.flush()
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
    teacher_options: dict[str, Any] | None  # None: runs made before options moved to the run


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
        teacher_options=params.get("teacher"),
    )


def _problem_views(session: Session, problem_ids: Sequence[int]) -> dict[int, ProblemView]:
    rows = session.execute(
        select(Problem.id, Problem.question, Problem.choices, Task.name, Task.answer_type)
        .join(Task, Task.id == Problem.task_id)
        .where(Problem.id.in_(list(problem_ids)))
    )
    return {pid: ProblemView(q, choices, task, answer_type) for pid, q, choices, task, answer_type in rows}


def _share(total: int | None, parts: int, position: int) -> int | None:
    """One call's token count split among the samples it produced, so that the samples sum to it."""
    if total is None:
        return None
    return total // parts + (1 if position < total % parts else 0)


class _Sink:
    """Stores results as they arrive: every FLUSH_SIZE results, and every FLUSH_SECONDS from a
    background thread (a result is never left waiting for the next one to arrive), one transaction
    writes the generations (and their rationales, when complete), moves the run's counters, and
    after the commit sends the new rationales on to execution or verification.

    When a background flush fails, `stop_asking` is set: the teacher call is cancelled rather than
    paid for answers that may not be stored, and the task fails with that error. (The lease on the
    batch is renewed by a thread of its own, which sets `stop_asking` too if the lease is lost.)

    Used as a context manager: on the way out, whatever is still buffered is stored, even when the
    task is failing (those answers were paid for).
    """

    def __init__(
        self,
        db: Database,
        dispatcher: Dispatcher,
        context: _RunContext,
        retry_failed: bool,
        lease: Lease,
        stop_asking: threading.Event,
    ) -> None:
        self.db, self.dispatcher, self.context, self.retry_failed = db, dispatcher, context, retry_failed
        self.lease = lease
        self.stop_asking = stop_asking
        self.first_stage: list[tuple[Any, ...]] = []
        self.answer_stage: list[tuple[int, GenerationResult]] = []
        self.stored = 0
        self.followed_up: set[int] = set()
        self._buffer_lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time, in arrival order
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._background, name=f"sink-run-{context.run_id}", daemon=True)

    def __enter__(self) -> _Sink:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._thread.join()
        try:
            self.flush()
        except Exception:
            if error is None:
                raise
            log.exception("run %s: could not store buffered results while failing", self.context.run_id)

    def _background(self) -> None:
        while not self._stopping.wait(FLUSH_SECONDS):
            try:
                self.flush()
            except BaseException as failure:  # raised in the task's thread once the teacher call stops
                self._failure = failure
                self.stop_asking.set()
                return

    def check(self) -> None:
        """Raise what made the task stop: a failed background flush, or the lease lost."""
        self._check()

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self.lease.lost:
            raise self.lease.lost_error()

    def add_first_stage(
        self, problem_id: int, prompt: Prompt, result: GenerationResult, choice_order: list[str] | None
    ) -> None:
        samples = result.request.samples
        rows = []
        for position, sample in enumerate(samples):
            completion = result.completions[position] if position < len(result.completions) else None
            rows.append((
                self.context.run_id, problem_id, sample,
                GenerationStatus.ok.value if completion else GenerationStatus.failed.value,
                prompt.digest,
                storable(completion.text) if completion else None,
                completion.finish_reason if completion else None,
                _share(result.prompt_tokens, len(samples), position),
                _share(result.completion_tokens, len(samples), position),
                result.latency_ms,
                result.attempts,
                None if completion else storable(result.error or "no completion returned"),
                choice_order,
            ))  # fmt: skip
        with self._buffer_lock:
            self.first_stage.extend(rows)
            full = len(self.first_stage) + len(self.answer_stage) >= FLUSH_SIZE
        self._check()
        if full:
            self.flush()

    def add_answer_stage(self, generation_id: int, result: GenerationResult) -> None:
        with self._buffer_lock:
            self.answer_stage.append((generation_id, result))
            full = len(self.first_stage) + len(self.answer_stage) >= FLUSH_SIZE
        self._check()
        if full:
            self.flush()

    def flush(self) -> None:
        with self._flush_lock:
            with self._buffer_lock:
                first, answers = self.first_stage, self.answer_stage
                self.first_stage, self.answer_stage = [], []
            if not first and not answers:
                return
            try:
                self._write(first, answers)
            except BaseException:
                with self._buffer_lock:  # kept for the next attempt (the final flush at the latest)
                    self.first_stage[:0], self.answer_stage[:0] = first, answers
                raise
            self.stored += len(first) + len(answers)

    def _write(self, first: list[tuple[Any, ...]], answers: list[tuple[int, GenerationResult]]) -> None:
        context = self.context
        two_stage = context.template.two_stage
        with self.db.transaction() as session:
            done = failed = 0
            finished: list[tuple[int, int]] = []  # (problem, sample) whose rationale can be made now
            if first:
                status_of = {(row[1], row[2]): row[3] for row in first}
                ours = run_repo.store_generations(session, first)
                replaced: set[tuple[int, int]] = set()
                if self.retry_failed:  # only keys stored before: a row just inserted is not a retry
                    retried = [row for row in first if (row[1], row[2]) not in ours]
                    replaced = run_repo.replace_failed_generations(session, retried) if retried else set()
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
                    error = storable(result.error or "no completion returned")
                    if run_repo.fail_answer_stage(session, generation_id, error):
                        failed += 1
                elif run_repo.store_answer_stage(
                    session, generation_id, storable(result.completions[0].text), result.prompt_tokens,
                    result.completion_tokens,
                ):  # fmt: skip
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
                after_commit(session, lambda: self.followed_up.update(ids))


def _ask(
    runtime: Runtime,
    context: _RunContext,
    requests: list[GenerationRequest],
    params: SamplingParams,
    cancel: threading.Event,
) -> Iterator[GenerationResult]:
    """The teacher's results as they arrive; leaving the loop early (an error) or setting `cancel`
    (from another thread) cancels the rest."""
    results = runtime.teacher(context.teacher_id, context.teacher_options).generate(requests, params, cancel)
    try:
        yield from results
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def generate_batch(runtime: Runtime, run_id: int, problem_ids: Sequence[int], retry_failed: bool = False) -> int:
    """The generation task: fill in the missing samples of these problems; how many calls it stored.

    Raises BatchLeased (a Deferred) when another task is generating this batch right now.
    """
    db = runtime.db
    with db.read() as session:
        run = run_repo.get_run(session, run_id)
        if run.status is RunStatus.cancelled:
            return 0
        context = _context(session, run)
    lease = Lease(db, run_id, problem_ids, get_settings().lease_seconds)
    lease.acquire()
    try:
        generated = _generate(runtime, context, problem_ids, retry_failed, lease)
    finally:
        lease.release()
    if generated.stored == 0 or generated.resumed:
        # A re-delivery or a resume: an earlier delivery may have died between storing answers and
        # sending their follow-ups. Send on the unfinished follow-up work of these problems, less
        # what this delivery sent itself.
        _resend_followups(db, runtime.dispatcher, context, problem_ids, skip=generated.followed_up)
    return generated.stored


@dataclass(frozen=True)
class _Generated:
    stored: int  # teacher calls stored
    resumed: bool  # the batch had stored generations when the task began
    followed_up: frozenset[int]  # rationales whose execution or verification the task sent


def _generate(
    runtime: Runtime, context: _RunContext, problem_ids: Sequence[int], retry_failed: bool, lease: Lease
) -> _Generated:
    db, run_id, two_stage = runtime.db, context.run_id, context.template.two_stage
    if retry_failed and two_stage:
        with db.transaction() as session:
            revived = run_repo.revive_answer_stage(session, run_id, problem_ids)
            run_repo.add_to_counters(session, run_id, failed=-revived)
    with db.read() as session:  # read after the claim: whatever an earlier holder stored is seen
        problems = _problem_views(session, problem_ids)
        stored = run_repo.generations_for(session, run_id, problem_ids, two_stage=two_stage)
    stored_before = stored
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
    stop_asking = threading.Event()
    sink = _Sink(db, runtime.dispatcher, context, retry_failed, lease, stop_asking)
    with lease.kept(on_lost=stop_asking.set), sink:
        for result in _ask(runtime, context, first_stage, context.sampling, stop_asking) if first_stage else ():
            pid = cast(int, result.request.key)
            sink.add_first_stage(pid, prompts[pid], result, problems[pid].choice_order)
        sink.check()  # the teacher call may have ended because storing failed
        if two_stage:
            sink.flush()  # the second stage reads what the first stored
            with db.read() as session:
                stored = run_repo.generations_for(session, run_id, problem_ids, two_stage=True)
            second_stage = []
            for (pid, sample), generation in sorted(stored.items()):
                waiting = generation.status is GenerationStatus.ok and not generation.complete
                if waiting and generation.output is not None:
                    first_prompt = prompts.get(pid) or context.template.render(problems[pid])
                    prompt = context.template.render_answer_stage(problems[pid], first_prompt, generation.output)
                    second_stage.append((generation.generation_id, GenerationRequest((pid, sample), prompt, (0,))))
            if second_stage:
                by_key = {request.key: gid for gid, request in second_stage}
                answer_params = SamplingParams(stop=context.sampling.stop, **ANSWER_STAGE)  # type: ignore[arg-type]
                for result in _ask(runtime, context, [r for _, r in second_stage], answer_params, stop_asking):
                    sink.add_answer_stage(by_key[result.request.key], result)
                sink.check()
    return _Generated(sink.stored, bool(stored_before), frozenset(sink.followed_up))


def _resend_followups(
    db: Database, dispatcher: Dispatcher, context: _RunContext, problem_ids: Sequence[int], skip: frozenset[int]
) -> None:
    with db.transaction() as session:
        unexecuted, unlabelled = verification_repo.unfinished_rationales(
            session, context.run_id, problem_ids, limits_hash=context.limits.digest(),
            verifier_version=context.verifier_version,
        )  # fmt: skip
        unexecuted = [rid for rid in unexecuted if rid not in skip]
        unlabelled = [rid for rid in unlabelled if rid not in skip]
        if unexecuted:
            after_commit(session, lambda: dispatcher.send(EXECUTE, context.run_id, unexecuted))
        ready = sorted(set(unlabelled) - set(unexecuted))
        if ready:
            after_commit(session, lambda: dispatcher.send(VERIFY, context.run_id, ready))


# --- Follow-up tasks --------------------------------------------------------------------------------


def execute_task(runtime: Runtime, run_id: int, rationale_ids: Sequence[int]) -> int:
    """Run the programs in the sandbox and store their executions with their labels."""
    with runtime.db.read() as session:
        context = _context(session, run_repo.get_run(session, run_id))
    return check_batch(runtime.db, runtime.sandbox(), rationale_ids, context.limits, context.verifier_version).labelled


def verify_task(runtime: Runtime, run_id: int, rationale_ids: Sequence[int]) -> int:
    """Label rationales that need no execution (CoT), or whose programs have run already."""
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
