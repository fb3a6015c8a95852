"""Evaluating a model on a task split: greedy outputs stored as student rationales, labelled by
the same verifiers as teacher output, summed up in an `evaluation` row.

`--model` is a training run (`run:ID`: its selected weights, and the prompt format it was trained
on, read from its config), a model folder, `embedded` (the bundled SmolLM2 before any training),
or `openai:MODEL` with a base URL (vLLM serving a checkpoint, for large splits). Generation is
greedy and batched with left padding (the local backend the teachers use), or over the server's
completions endpoint.

Re-running evaluates only what is missing: an evaluation is found again by (model, training run,
task, split, decoding), each output is keyed (evaluation, problem, sample) by a unique index, and
outputs are stored a batch at a time, so a crash loses at most the batch in flight. The counts
are recomputed from the labels at the end, so they always equal what the labels say.

With `repair_rounds` N > 0 (program students), each output whose execution failed visibly is
repaired by the same student for up to N rounds (trainer/refinement/loop.py); the repairs are
rationales of the evaluation (sample k = round k), and the counts are those of each problem's
last attempt: the accuracy after repair (the evaluation_round view has every round).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
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
    Label,
    ModelRole,
    Problem,
    Rationale,
    RationaleKind,
    RationaleOrigin,
    Task,
    TrainingRun,
    TrainingStatus,
)
from curation.rationales import rationale_body
from curation.repositories import models as model_repo
from curation.repositories import problems as problem_repo
from curation.repositories.verification import VERIFIER_BY_KIND
from curation.student_prompt import FTCOT_STOP, student_prompt
from curation.templates import ProblemView
from trainer.refinement.loop import RoundFigures, repair_rounds
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

    def line(self) -> str:
        executed = f", {self.executed_ok} programs ran" if self.executed_ok is not None else ""
        text = (
            f"evaluation #{self.evaluation_id}: {self.model} on {self.task}/{self.split}: "
            f"{self.correct}/{self.problems} correct ({self.accuracy:.1%}); {self.incorrect} incorrect, "
            f"{self.unparseable} unparseable, {self.errors} errors{executed}; {self.generated} new outputs"
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
        "method": "greedy",
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
    if found is not None:
        return found
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
    return evaluation


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
    with db.transaction() as session:
        task = problem_repo.get_task(session, spec.task)
        if task is None:
            raise NotFoundError(f"task {spec.task!r} has no problems: ingest it first")
        target = _resolve(session, spec)
        kind = kind_of(target.prompt_format)
        if spec.repair_rounds and kind is not RationaleKind.program:
            raise CurationError("--repair-rounds repairs programs: the student writes CoT (format ftcot)")
        evaluation = _evaluation(session, target, task, spec)
        evaluation.status = TrainingStatus.running
        evaluation_id = evaluation.id
        scope = _scope(session, task, spec.split, spec.limit)
        if not scope:
            raise CurationError(f"task {spec.task} has no problems in split {spec.split!r}")
        missing = [(pid, view) for pid, view in scope if pid not in _done(session, evaluation_id)]
    generated = 0
    generator: Teacher | None = None
    rounds: list[RoundFigures] = []
    try:
        if missing:
            if echo:
                todo = f"{len(missing)} of {len(scope)} problems to generate"
                echo(f"evaluation #{evaluation_id}: {todo} ({target.label})")
            generator = _generator(target, spec)
            for start in range(0, len(missing), STORE_BATCH):
                generated += _generate_and_store(
                    db, generator, evaluation_id, target, kind, missing[start : start + STORE_BATCH], spec
                )
        _verify(db, evaluation_id, kind, sandbox_factory)
        if spec.repair_rounds:

            def generate(prompts: Sequence[str]) -> list[str]:
                nonlocal generator
                if generator is None:
                    generator = _generator(target, spec)
                return _complete(generator, prompts, spec)

            rounds = repair_rounds(
                db, evaluation_id, target.model_id, spec.repair_rounds, generate,
                lambda: _verify(db, evaluation_id, kind, sandbox_factory),
                lambda out: rationale_body(out, RationaleKind.program),
            )  # fmt: skip
    finally:
        if generator is not None:
            generator.close()
    report = _summarise(db, evaluation_id, len(scope), kind, target.label, spec, generated)
    return replace(report, rounds=tuple(rounds))


def _complete(generator: Teacher, prompts: Sequence[str], spec: EvalSpec) -> list[str]:
    from curation.templates import Prompt

    params = SamplingParams(temperature=0.0, max_tokens=spec.max_new_tokens, stop=STOP)
    texts: dict[int, str] = {}
    requests = [GenerationRequest(key=i, prompt=Prompt(p)) for i, p in enumerate(prompts)]
    for result in generator.generate(requests, params):
        if result.failed or not result.completions:
            raise CurationError(f"repair generation failed for prompt {result.request.key}: {result.error}")
        texts[int(result.request.key)] = result.completions[0].text  # type: ignore[call-overload]
    return [texts[i] for i in range(len(prompts))]


def _generate_and_store(
    db: Database,
    generator: Teacher,
    evaluation_id: int,
    target: _Target,
    kind: RationaleKind,
    batch: Sequence[tuple[int, ProblemView]],
    spec: EvalSpec,
) -> int:
    from curation.templates import Prompt

    requests = [
        GenerationRequest(key=pid, prompt=Prompt(student_prompt(kind, view.question, view.choices)))
        for pid, view in batch
    ]
    params = SamplingParams(temperature=0.0, max_tokens=spec.max_new_tokens, stop=STOP)
    rows = []
    for result in generator.generate(requests, params):
        pid = int(result.request.key)  # type: ignore[call-overload]
        if result.failed or not result.completions:
            raise CurationError(f"evaluation #{evaluation_id}: generation failed for problem {pid}: {result.error}")
        text = result.completions[0].text
        body = rationale_body(text, kind) if kind is RationaleKind.program else text.strip()
        rows.append((pid, evaluation_id, target.model_id, 0, kind.value, RationaleOrigin.student.value, body))
    with db.transaction() as session:
        return insert_ignoring_conflicts_bulk(
            session,
            Rationale.__table__,  # type: ignore[arg-type]
            ("problem_id", "evaluation_id", "model_id", "sample_index", "kind", "origin", "body"),
            rows,
            ["evaluation_id", "problem_id", "sample_index"],
        )


def _verify(db: Database, evaluation_id: int, kind: RationaleKind, sandbox_factory: Callable[[], Any] | None) -> None:
    from workers.verification import check_batch

    with db.read() as session:
        ids = list(
            session.execute(
                select(Rationale.id).where(Rationale.evaluation_id == evaluation_id).order_by(Rationale.id)
            ).scalars()
        )
    if not ids:
        return
    sandbox = None
    if kind is RationaleKind.program:
        if sandbox_factory is not None:
            sandbox = sandbox_factory()
        else:
            from workers.sandbox import Sandbox

            sandbox = Sandbox()
    try:
        for start in range(0, len(ids), 500):
            check_batch(db, sandbox, ids[start : start + 500], Limits(), VERIFIER_VERSION)
    finally:
        if sandbox is not None and sandbox_factory is None:
            sandbox.close()


def _summarise(
    db: Database, evaluation_id: int, problems: int, kind: RationaleKind, label: str, spec: EvalSpec, generated: int
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
        evaluation = session.get(Evaluation, evaluation_id)
        assert evaluation is not None
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
        return EvalReport(
            evaluation_id, label, spec.task, spec.split, problems, generated, evaluation.correct,
            evaluation.incorrect, evaluation.unparseable, evaluation.errors, executed_ok, evaluation.accuracy,
        )  # fmt: skip
