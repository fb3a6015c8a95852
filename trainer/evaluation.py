"""Evaluating a model on a task split: its outputs stored as generations of the evaluation's own
synthesis run and as student rationales, labelled by the same verifiers as teacher output, summed
up in an `evaluation` row.

`--model` is a training run (`run:ID`: its selected weights, and the prompt format it was trained
on, read from its config), a model folder, `embedded` (the bundled SmolLM2 before any training),
or `openai:MODEL` with a base URL (vLLM serving a checkpoint, for large splits). Generation is
greedy and batched with left padding (the local backend the teachers use), or over the server's
completions endpoint; or best-of-N sampling, or step-verified beam search (trainer/decoding/modes.py,
the local backend only).

Every evaluation has a synthesis run of its own (teacher = the student model, the `student`
template of its prompt format, the task and split, params = the decoding): each output is a
generation (raw text, finish reason, prompt and completion tokens, latency) and its rationale
links to it. The evaluation's output for a problem is the rationale with its evaluation_id;
best-of-N keeps every sample as a rationale of its generation (sample_index = the sample), the
selected one carrying the evaluation_id. `evaluation.metrics` sums what decoding cost (student
tokens, sandbox programs, seconds) over the calls that generated outputs, and counts the
programs the verifier ran.

Re-running evaluates only what is missing: an evaluation is found again by (model, training run,
task, split, decoding), each output is keyed (evaluation, problem, sample) by a unique index and
each generation (run, problem, sample), and a batch's generations and rationales are stored in
one transaction, so a crash loses at most the batch in flight. The counts
are recomputed from the labels at the end, so they always equal what the labels say.

With `repair_rounds` N > 0 (program students), each output whose execution failed visibly is
repaired by the same student for up to N rounds (trainer/refinement/loop.py); the repairs are
rationales of the evaluation (sample k = round k) and generations of its run, and the counts are
those of each problem's last attempt: the accuracy after repair (the evaluation_round view has
every round).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, aliased

from curation.answers.verdict import VERIFIER_VERSION
from curation.db.base import utc_now
from curation.db.bulk import insert_ignoring_conflicts_bulk
from curation.db.session import Database
from curation.errors import CurationError, NotFoundError
from curation.models import (
    Evaluation,
    Execution,
    ExecutionStatus,
    Generation,
    Label,
    ModelRole,
    Problem,
    PromptTemplate,
    Rationale,
    RationaleKind,
    RationaleOrigin,
    RunStatus,
    SynthesisRun,
    Task,
    TrainingRun,
    TrainingStatus,
)
from curation.rationales import rationale_body
from curation.repositories import models as model_repo
from curation.repositories import problems as problem_repo
from curation.repositories import runs as run_repo
from curation.repositories.verification import VERIFIER_BY_KIND
from curation.student_prompt import FTCOT_STOP, student_prompt
from curation.templates import ProblemView, ensure_student_template
from trainer.decoding.modes import BatchProblem, Cost, Decoder, Decoding, Output
from trainer.refinement.loop import Completed, RoundFigures, repair_rounds
from workers.sandbox import Limits
from workers.teachers.base import GenerationRequest, SamplingParams, Teacher

STORE_BATCH = 64
STOP = (FTCOT_STOP,)
# Which kind of rationale a student trained on an export format writes.
KIND_OF_FORMAT = {"ftcot": RationaleKind.cot, "pad": RationaleKind.program, "repair": RationaleKind.program}


def kind_of(fmt: str) -> RationaleKind:
    if fmt not in KIND_OF_FORMAT:
        raise CurationError(
            f"cannot evaluate in format {fmt!r}: a student writes ftcot (CoT), or pad or repair (programs)"
        )
    return KIND_OF_FORMAT[fmt]  # Fine-tune-CoT's completions end with " END"; the end-of-sequence token ends them too


@dataclass(frozen=True)
class EvalSpec:
    model: str
    task: str
    split: str
    base_url: str | None = None
    prompt_format: str | None = None  # None: the training run's, else ftcot
    limit: int | None = None
    batch_size: int = 16
    max_new_tokens: int = 256
    device: str = "auto"
    repair_rounds: int = 0  # program students: repair visible execution failures, up to N rounds
    decoding: Decoding = field(default_factory=Decoding)  # greedy, sample (best-of-N) or step-beam


@dataclass(frozen=True)
class EvalReport:
    evaluation_id: int
    model: str
    task: str
    split: str
    problems: int
    generated: int  # outputs made by this call (0 on a rerun with nothing missing)
    correct: int
    incorrect: int
    unparseable: int
    errors: int
    executed_ok: int | None
    accuracy: float
    rounds: tuple[RoundFigures, ...] = ()
    method: str = "greedy"
    metrics: dict[str, Any] | None = None

    def line(self) -> str:
        executed = f", {self.executed_ok} programs ran" if self.executed_ok is not None else ""
        text = (
            f"evaluation #{self.evaluation_id}: {self.model} on {self.task}/{self.split}: "
            f"{self.correct}/{self.problems} correct ({self.accuracy:.1%}); {self.incorrect} incorrect, "
            f"{self.unparseable} unparseable, {self.errors} errors{executed}; {self.generated} new outputs"
        )
        if self.metrics:
            m = self.metrics
            text += (
                f"\n  {self.method}: {m['student_tokens']:,} student tokens, {m['sandbox_programs']:,} sandbox "
                f"programs ({m['decode_sandbox_programs']:,} while decoding), {m['wall_seconds']:.1f} s"
            )
        for r in self.rounds:
            text += (
                f"\n  repair round {r.round}: {r.failures} failures, {r.reachable} reachable (error, timeout, "
                f"no value), {r.unreachable} unreachable (a wrong value), {r.repaired} repaired"
            )
        return text


@dataclass(frozen=True)
class _Target:
    model_id: int
    training_run_id: int | None
    backend: str  # transformers | openai
    path_or_name: str
    prompt_format: str
    label: str


def _encoder_decoder(target: _Target) -> bool:
    if target.backend != "transformers":
        return False
    config = Path(target.path_or_name) / "config.json"
    return config.is_file() and bool(json.loads(config.read_text()).get("is_encoder_decoder"))


def weights_digest(folder: Path) -> str:
    """sha256 over the folder's weight files (names and bytes, in name order): the model's revision."""
    digest = hashlib.sha256()
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise CurationError(f"{folder} holds no model weights (*.safetensors or *.bin)")
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _resolve(session: Session, spec: EvalSpec) -> _Target:
    text = spec.model
    if text.startswith("run:"):
        try:
            run_id = int(text[4:])
        except ValueError:
            raise CurationError(f"--model {text!r}: run:ID takes a training run id") from None
        run = session.get(TrainingRun, run_id)
        if run is None:
            raise NotFoundError(f"training run {run_id} does not exist")
        if run.status is not TrainingStatus.completed or run.output_model_id is None or not run.checkpoint_path:
            raise CurationError(f"training run {run_id} is {run.status.value}: only a completed run can be evaluated")
        fmt = spec.prompt_format or str(run.config.get("format", "ftcot"))
        return _Target(run.output_model_id, run.id, "transformers", run.checkpoint_path, fmt, f"run:{run.id}")
    fmt = spec.prompt_format or "ftcot"
    if text.startswith("openai:"):
        if not spec.base_url:
            raise CurationError("--model openai:MODEL needs --base-url (an OpenAI-compatible server)")
        name = text[len("openai:") :]
        row = model_repo.ensure_model(session, role=ModelRole.student, backend="openai", name=name)
        return _Target(row.id, None, "openai", name, fmt, text)
    if text == "embedded":
        from workers.teachers.embedded_model import MODEL_NAME, prepare_embedded_model

        path = prepare_embedded_model()
        row = model_repo.ensure_model(session, role=ModelRole.student, backend="embedded", name=MODEL_NAME)
        return _Target(row.id, None, "transformers", str(path), fmt, "embedded")
    folder = Path(text).expanduser()
    if not (folder / "config.json").is_file():
        raise CurationError(f"--model {text!r} is no model folder (no config.json), run:ID, embedded or openai:MODEL")
    folder = folder.resolve()
    row = model_repo.ensure_model(
        session, role=ModelRole.student, backend="transformers", name=str(folder), revision=weights_digest(folder)
    )
    owner = session.execute(select(TrainingRun.id).where(TrainingRun.output_model_id == row.id)).scalar()
    return _Target(row.id, owner, "transformers", str(folder), fmt, str(folder))


def _generator(target: _Target, spec: EvalSpec) -> Teacher:
    if target.backend == "openai":
        from workers.teachers.openai_http import HttpTeacherConfig, OpenAICompatibleTeacher

        assert spec.base_url is not None
        return OpenAICompatibleTeacher(
            HttpTeacherConfig(base_url=spec.base_url, model=target.path_or_name, api="completions")
        )
    from workers.teachers.local import LocalTransformersTeacher

    return LocalTransformersTeacher(target.path_or_name, device=spec.device, batch_size=spec.batch_size, chat=False)


def _evaluation(session: Session, target: _Target, task: Task, spec: EvalSpec) -> Evaluation:
    decoding = {
        **spec.decoding.describe(),
        "format": target.prompt_format,
        "max_new_tokens": spec.max_new_tokens,
        "limit": spec.limit,
        "verifier_version": VERIFIER_VERSION,
    }
    if spec.repair_rounds:
        decoding["repair_rounds"] = spec.repair_rounds
    candidates = session.execute(
        select(Evaluation)
        .where(
            Evaluation.model_id == target.model_id,
            Evaluation.task_id == task.id,
            Evaluation.split == spec.split,
            Evaluation.training_run_id.is_(None)
            if target.training_run_id is None
            else Evaluation.training_run_id == target.training_run_id,
        )
        .order_by(Evaluation.id)
    ).scalars()
    found = next((e for e in candidates if e.decoding == decoding), None)
    evaluation = found
    if evaluation is None:
        evaluation = Evaluation(
            model_id=target.model_id,
            training_run_id=target.training_run_id,
            task_id=task.id,
            split=spec.split,
            decoding=decoding,
            status=TrainingStatus.running,
        )
        session.add(evaluation)
        session.flush()
    if evaluation.synthesis_run_id is None:  # new, or made before evaluations had runs
        template = ensure_student_template(session, target.prompt_format)
        evaluation.synthesis_run_id = _student_run(session, evaluation, target, template, spec).id
    return evaluation


def _student_run(
    session: Session, evaluation: Evaluation, target: _Target, template: PromptTemplate, spec: EvalSpec
) -> SynthesisRun:
    d = spec.decoding
    run = SynthesisRun(
        name=f"evaluation {evaluation.id}: {target.label} on {spec.task}/{spec.split} ({d.method})",
        teacher_id=target.model_id,
        template_id=template.id,
        task_id=evaluation.task_id,
        split=spec.split,
        selection={"evaluation_id": evaluation.id, "limit": spec.limit},
        samples_per_problem=d.samples if d.method == "sample" else 1,
        temperature=0.0 if d.method == "greedy" else d.temperature,
        max_tokens=spec.max_new_tokens,
        seed=None if d.method == "greedy" else d.seed,
        source=f"evaluation:{evaluation.id}",
        params={"evaluation_id": evaluation.id, "decoding": evaluation.decoding, "stop": list(STOP)},
        status=RunStatus.running,
        started_at=utc_now(),
    )
    session.add(run)
    session.flush()
    return run


def _scope(session: Session, task: Task, split: str, limit: int | None) -> list[tuple[int, ProblemView]]:
    query = (
        select(Problem.id, Problem.question, Problem.choices)
        .where(Problem.task_id == task.id, Problem.split == split)
        .order_by(Problem.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return [(pid, ProblemView(q, c, task.name, task.answer_type)) for pid, q, c in session.execute(query)]


def _done(session: Session, evaluation_id: int) -> set[int]:
    return set(session.execute(select(Rationale.problem_id).where(Rationale.evaluation_id == evaluation_id)).scalars())


def evaluate(
    db: Database,
    spec: EvalSpec,
    *,
    sandbox_factory: Callable[[], Any] | None = None,
    echo: Callable[[str], object] | None = None,
) -> EvalReport:
    started = time.perf_counter()
    with db.transaction() as session:
        task = problem_repo.get_task(session, spec.task)
        if task is None:
            raise NotFoundError(f"task {spec.task!r} has no problems: ingest it first")
        target = _resolve(session, spec)
        kind = kind_of(target.prompt_format)
        spec.decoding.check(kind, target.backend, encoder_decoder=_encoder_decoder(target))
        if spec.repair_rounds and kind is not RationaleKind.program:
            raise CurationError("--repair-rounds repairs programs: the student writes CoT (format ftcot)")
        if spec.repair_rounds and spec.decoding.method == "sample":
            raise CurationError("--repair-rounds repairs one output per problem: not with --decode sample")
        evaluation = _evaluation(session, target, task, spec)
        evaluation.status = TrainingStatus.running
        evaluation_id = evaluation.id
        assert evaluation.synthesis_run_id is not None
        run_id = evaluation.synthesis_run_id
        scope = _scope(session, task, spec.split, spec.limit)
        if not scope:
            raise CurationError(f"task {spec.task} has no problems in split {spec.split!r}")
        missing = [(pid, view) for pid, view in scope if pid not in _done(session, evaluation_id)]
    generated = generated_repairs = 0
    generator: Teacher | None = None
    cost = Cost()
    rounds: list[RoundFigures] = []
    sandbox, owned = _open_sandbox(kind, spec, sandbox_factory)
    stored = _Stored(db, evaluation_id, run_id, target.model_id, kind)
    try:
        if missing:
            if echo:
                todo = f"{len(missing)} of {len(scope)} problems to generate"
                echo(f"evaluation #{evaluation_id}: {todo} ({target.label}, {spec.decoding.method})")
            if spec.decoding.method == "greedy":
                generator = _generator(target, spec)
                for start in range(0, len(missing), STORE_BATCH):
                    outputs, spent = _greedy_batch(generator, kind, missing[start : start + STORE_BATCH], spec)
                    generated += stored.add(outputs)
                    cost.add(spent)
            else:
                decoder = _decoder(target, kind, spec, sandbox)
                d = spec.decoding  # a batch of problems holds about STORE_BATCH samples or beams
                batch_size = max(1, STORE_BATCH // max(1, d.samples if d.method == "sample" else d.beams))
                for start in range(0, len(missing), batch_size):
                    batch = [
                        BatchProblem(pid, view, student_prompt(kind, view.question, view.choices))
                        for pid, view in missing[start : start + batch_size]
                    ]
                    outputs, spent = decoder.decode(batch)
                    generated += stored.add(outputs)
                    cost.add(spent)
                    if echo:
                        echo(f"  {min(start + batch_size, len(missing))}/{len(missing)} problems decoded")
        _verify(db, evaluation_id, run_id, kind, sandbox)
        if spec.repair_rounds:

            def generate(prompts: Sequence[str]) -> list[Completed]:
                nonlocal generator, generated_repairs
                if generator is None:
                    generator = _generator(target, spec)
                started_repairs = time.perf_counter()
                outputs = _complete(generator, prompts, spec)
                cost.add(
                    Cost(
                        prompt_tokens=sum(o.prompt_tokens or 0 for o in outputs),
                        completion_tokens=sum(o.completion_tokens or 0 for o in outputs),
                        seconds=time.perf_counter() - started_repairs,
                    )
                )
                generated_repairs += len(outputs)
                return outputs

            rounds = repair_rounds(
                db, evaluation_id, target.model_id, spec.repair_rounds, generate,
                lambda: _verify(db, evaluation_id, run_id, kind, sandbox),
                lambda out: rationale_body(out, RationaleKind.program), run_id=run_id,
            )  # fmt: skip
    finally:
        if generator is not None:
            generator.close()
        if owned and sandbox is not None:
            sandbox.close()
    # A rerun that made nothing cost nothing.
    wall = time.perf_counter() - started if generated or generated_repairs else 0.0
    report = _summarise(db, evaluation_id, run_id, len(scope), kind, target.label, spec, generated, cost, wall)
    return replace(report, rounds=tuple(rounds))


def _open_sandbox(kind: RationaleKind, spec: EvalSpec, factory: Callable[[], Any] | None) -> tuple[Any, bool]:
    """The sandbox for programs (decoding and verification share it); owned: ours to close."""
    if kind is not RationaleKind.program:
        return None, False
    if factory is not None:
        return factory(), False
    from workers.sandbox import Sandbox

    return Sandbox(), True


def _decoder(target: _Target, kind: RationaleKind, spec: EvalSpec, sandbox: Any) -> Decoder:
    from trainer.decoding.generation import TransformersLineSource

    verifier = None
    if spec.decoding.uses_verifier():
        from trainer.verifier import LearnedVerifier

        assert spec.decoding.verifier is not None
        verifier = LearnedVerifier.load(Path(spec.decoding.verifier).expanduser())
    source = TransformersLineSource.from_pretrained(
        target.path_or_name, device=spec.device, max_program_tokens=spec.max_new_tokens, batch_size=spec.batch_size
    )
    return Decoder(
        spec.decoding, kind, source, sandbox=sandbox, stop=STOP, verifier=verifier,
        program_of=lambda text: rationale_body(text, RationaleKind.program),
    )  # fmt: skip


def _greedy_batch(
    generator: Teacher, kind: RationaleKind, batch: Sequence[tuple[int, ProblemView]], spec: EvalSpec
) -> tuple[list[Output], Cost]:
    from curation.templates import Prompt

    requests = [
        GenerationRequest(key=pid, prompt=Prompt(student_prompt(kind, view.question, view.choices)))
        for pid, view in batch
    ]
    params = SamplingParams(temperature=0.0, max_tokens=spec.max_new_tokens, stop=STOP)
    outputs = []
    started = time.perf_counter()
    for result in generator.generate(requests, params):
        pid = int(result.request.key)  # type: ignore[call-overload]
        if result.failed or not result.completions:
            raise CurationError(f"generation failed for problem {pid}: {result.error}")
        completion = result.completions[0]
        outputs.append(
            Output(
                pid, 0, completion.text, completion.finish_reason, result.prompt_tokens or 0,
                result.completion_tokens or 0, result.latency_ms or 0.0, True,
            )
        )  # fmt: skip
    cost = Cost(
        prompt_tokens=sum(o.prompt_tokens for o in outputs),
        completion_tokens=sum(o.completion_tokens for o in outputs),
        seconds=time.perf_counter() - started,
    )
    return outputs, cost


def _complete(generator: Teacher, prompts: Sequence[str], spec: EvalSpec) -> list[Completed]:
    from curation.templates import Prompt

    params = SamplingParams(temperature=0.0, max_tokens=spec.max_new_tokens, stop=STOP)
    done: dict[int, Completed] = {}
    requests = [GenerationRequest(key=i, prompt=Prompt(p)) for i, p in enumerate(prompts)]
    for result in generator.generate(requests, params):
        if result.failed or not result.completions:
            raise CurationError(f"repair generation failed for prompt {result.request.key}: {result.error}")
        completion = result.completions[0]
        done[int(result.request.key)] = Completed(  # type: ignore[call-overload]
            completion.text, completion.finish_reason, result.prompt_tokens, result.completion_tokens,
            result.latency_ms,
        )  # fmt: skip
    return [done[i] for i in range(len(prompts))]


class _Stored:
    """Stores a batch of outputs in one transaction: a generation each (under the evaluation's
    run), a rationale each linked to it; the selected output of a problem carries the evaluation."""

    def __init__(self, db: Database, evaluation_id: int, run_id: int, model_id: int, kind: RationaleKind) -> None:
        self.db, self.evaluation_id, self.run_id, self.model_id, self.kind = db, evaluation_id, run_id, model_id, kind

    def add(self, outputs: Sequence[Output]) -> int:
        """How many problems got their output from this call (0 for those another writer stored first)."""
        if not outputs:
            return 0
        generations = [
            {
                "synthesis_run_id": self.run_id, "problem_id": o.problem_id, "sample_index": o.sample_index,
                "status": "ok", "output": o.text, "finish_reason": o.finish_reason, "prompt_tokens": o.prompt_tokens,
                "completion_tokens": o.completion_tokens, "latency_ms": o.latency_ms, "attempts": 1,
                "meta": o.meta or None,
            }
            for o in outputs
        ]  # fmt: skip
        with self.db.transaction() as session:
            run_repo.insert_generations(session, generations)
            ids = run_repo.generation_ids(session, self.run_id, [(o.problem_id, o.sample_index) for o in outputs])
            selected, others = [], []
            for o in outputs:
                gid = ids[(o.problem_id, o.sample_index)][0]
                body = rationale_body(o.text, self.kind) if self.kind is RationaleKind.program else o.text.strip()
                row = (
                    o.problem_id,
                    gid,
                    self.model_id,
                    o.sample_index,
                    self.kind.value,
                    RationaleOrigin.student.value,
                )
                if o.selected:
                    selected.append((*row, body, self.evaluation_id))
                else:
                    others.append((*row, body, None))
            columns = (
                "problem_id",
                "generation_id",
                "model_id",
                "sample_index",
                "kind",
                "origin",
                "body",
                "evaluation_id",
            )
            table: Any = Rationale.__table__
            stored = insert_ignoring_conflicts_bulk(
                session, table, columns, selected, ["evaluation_id", "problem_id", "sample_index"]
            )
            insert_ignoring_conflicts_bulk(session, table, columns, others, ["generation_id"])
            run_repo.add_to_counters(session, self.run_id, done=len(outputs))
        return stored


def _verify(db: Database, evaluation_id: int, run_id: int, kind: RationaleKind, sandbox: Any) -> None:
    """Label the evaluation's outputs and every other sample of its run (nothing generated goes unlabelled)."""
    from workers.verification import check_batch

    with db.read() as session:
        of_run = select(Generation.id).where(Generation.synthesis_run_id == run_id)
        ids = list(
            session.execute(
                select(Rationale.id)
                .where((Rationale.evaluation_id == evaluation_id) | Rationale.generation_id.in_(of_run))
                .order_by(Rationale.id)
            ).scalars()
        )
    for start in range(0, len(ids), 500):
        check_batch(db, sandbox, ids[start : start + 500], Limits(), VERIFIER_VERSION)


METRIC_KEYS = ("student_prompt_tokens", "student_completion_tokens", "decode_sandbox_programs",
               "decode_sandbox_batches", "decode_seconds", "wall_seconds")  # fmt: skip


def _metrics(before: dict[str, Any] | None, cost: Cost, wall: float, verification_programs: int) -> dict[str, Any]:
    """The stored figures plus this call's (a rerun that generated nothing adds nothing)."""
    old = before or {}
    added = (cost.prompt_tokens, cost.completion_tokens, cost.sandbox_programs, cost.sandbox_batches,
             cost.seconds, wall)  # fmt: skip
    metrics: dict[str, Any] = {key: (old.get(key) or 0) + value for key, value in zip(METRIC_KEYS, added, strict=True)}
    metrics["verification_programs"] = verification_programs
    metrics["sandbox_programs"] = metrics["decode_sandbox_programs"] + verification_programs
    metrics["student_tokens"] = metrics["student_completion_tokens"]
    return metrics


def _summarise(
    db: Database,
    evaluation_id: int,
    run_id: int,
    problems: int,
    kind: RationaleKind,
    label: str,
    spec: EvalSpec,
    generated: int,
    cost: Cost,
    wall: float,
) -> EvalReport:
    # Each problem's last attempt: the output itself, or its last repair within the evaluation.
    child = aliased(Rationale)
    last = ~exists().where(child.parent_id == Rationale.id, child.evaluation_id == evaluation_id)
    with db.transaction() as session:
        verdicts = Counter(
            {
                str(verdict.value): int(count)
                for verdict, count in session.execute(
                    select(Label.verdict, func.count())
                    .join(Rationale, Rationale.id == Label.rationale_id)
                    .where(
                        Rationale.evaluation_id == evaluation_id,
                        last,
                        Label.verifier == VERIFIER_BY_KIND[kind],
                        Label.verifier_version == VERIFIER_VERSION,
                    )
                    .group_by(Label.verdict)
                )
            }
        )
        executed_ok = None
        if kind is RationaleKind.program:
            executed_ok = int(
                session.execute(
                    select(func.count(func.distinct(Execution.rationale_id)))
                    .join(Rationale, Rationale.id == Execution.rationale_id)
                    .where(Rationale.evaluation_id == evaluation_id, last, Execution.status == ExecutionStatus.ok)
                ).scalar_one()
            )
        of_run = select(Generation.id).where(Generation.synthesis_run_id == run_id)
        verification_programs = int(
            session.execute(
                select(func.count(Execution.id))
                .join(Rationale, Rationale.id == Execution.rationale_id)
                .where((Rationale.evaluation_id == evaluation_id) | Rationale.generation_id.in_(of_run))
            ).scalar_one()
        )
        evaluation = session.get(Evaluation, evaluation_id)
        assert evaluation is not None
        evaluation.metrics = _metrics(evaluation.metrics, cost, wall, verification_programs)
        evaluation.problems = problems
        evaluation.correct = verdicts["correct"]
        evaluation.incorrect = verdicts["incorrect"]
        evaluation.unparseable = verdicts["unparseable"]
        evaluation.errors = verdicts["error"]
        evaluation.executed_ok = executed_ok
        evaluation.accuracy = verdicts["correct"] / problems if problems else 0.0
        labelled = sum(verdicts.values())
        evaluation.status = TrainingStatus.completed if labelled == problems else TrainingStatus.running
        evaluation.finished_at = utc_now() if labelled == problems else None
        run = session.get(SynthesisRun, run_id)
        assert run is not None
        run.problems_total = problems
        run_repo.refresh_counters(session, run_id, VERIFIER_VERSION, two_stage=False)
        if labelled == problems:
            run.status, run.finished_at = RunStatus.completed, run.finished_at or utc_now()
        return EvalReport(
            evaluation_id, label, spec.task, spec.split, problems, generated, evaluation.correct,
            evaluation.incorrect, evaluation.unparseable, evaluation.errors, executed_ok, evaluation.accuracy,
            method=spec.decoding.method, metrics=evaluation.metrics,
        )  # fmt: skip
