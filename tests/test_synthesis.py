"""Synthesis runs end to end in embedded mode, on both databases: pay-once generation, crash and
resume, duplicate delivery, failures, two-stage zero-shot-CoT, lost follow-up messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, text

from curation.db.session import Database
from curation.errors import CurationError
from curation.ingestion.service import ingest_procedural
from curation.models import Generation, Label, Rationale, RunStatus, SynthesisRun
from tests.support.scripted_teacher import ScriptedTeacher, TeacherCrash
from workers.dispatch import InlineDispatcher
from workers.driver import progress_of, run_embedded
from workers.runtime import Runtime
from workers.synthesis import (
    EXECUTE,
    GENERATE,
    RunSpec,
    TeacherSpec,
    create_run,
    generate_batch,
    resume_run,
    start_run,
)
from workers.tasks import TASKS


def _setup(db: Database, *, problems: int = 30, template: str = "pad-program", samples: int = 2, **spec: Any) -> int:
    with db.transaction() as session:
        ingest_procedural(session, count=problems, seed=11)
        run = create_run(
            session,
            RunSpec(task="procedural", teacher=TeacherSpec("scripted", "ref"), template=template,
                    samples=samples, temperature=0.7, batch_size=8, **spec),
        )  # fmt: skip
        return run.id


def _reference_programs(db: Database) -> dict[int, str]:
    with db.read() as session:
        rows = session.execute(text("SELECT id, meta FROM problem")).all()
    return {pid: (meta if isinstance(meta, dict) else json.loads(meta))["reference_program"] for pid, meta in rows}


def _count(db: Database, model: type) -> int:
    with db.read() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def _programs_teacher(db: Database, **kwargs: Any) -> ScriptedTeacher:
    programs = _reference_programs(db)
    return ScriptedTeacher(lambda request, sample: programs[int(request.key)], **kwargs)  # type: ignore[call-overload]


def _factory(teacher: ScriptedTeacher) -> Callable[[Any], ScriptedTeacher]:
    return lambda model: teacher


def test_program_run_generates_executes_and_labels_everything(db: Database) -> None:
    run_id = _setup(db)
    teacher = _programs_teacher(db)
    final = run_embedded(db, run_id, teacher_factory=_factory(teacher))
    assert (final.status, final.expected, final.generated, final.failed, final.labelled) == (
        RunStatus.completed,
        60,
        60,
        0,
        60,
    )
    assert set(teacher.calls.values()) == {1} and len(teacher.calls) == 60
    with db.read() as session:
        quality = session.execute(text("SELECT generations, executed_ok, correct FROM run_quality")).one()
    assert tuple(quality) == (60, 60, 60)


def test_a_crash_midway_then_resume_asks_for_nothing_twice(db: Database) -> None:
    run_id = _setup(db)
    crashing = _programs_teacher(db, crash_after=13)  # dies while answering the second batch
    with pytest.raises(TeacherCrash):
        run_embedded(db, run_id, teacher_factory=_factory(crashing))
    stored = _count(db, Generation)
    assert 0 < stored < 60  # what arrived before the crash was stored at once
    assert progress_of(db, run_id).status is RunStatus.running

    fresh = _programs_teacher(db)
    final = run_embedded(db, run_id, teacher_factory=_factory(fresh))
    assert final.status is RunStatus.completed
    asked_twice = set(crashing.calls) & set(fresh.calls)
    stored_first = {(pid, sample) for (pid, sample), n in crashing.calls.items()}
    # Only calls that were in flight when it crashed (asked, not stored) may be asked again.
    assert len(asked_twice) <= len(stored_first) - stored
    assert sum(fresh.calls.values()) == 60 - stored
    with db.read() as session:
        keys = session.execute(select(Generation.problem_id, Generation.sample_index)).all()
    assert len(keys) == len(set(keys)) == 60
    assert (_count(db, Rationale), _count(db, Label)) == (60, 60)


def test_the_same_task_delivered_twice_adds_nothing(db: Database) -> None:
    run_id = _setup(db, problems=8)
    teacher = _programs_teacher(db)
    dispatcher = InlineDispatcher(TASKS)
    runtime = Runtime(db, dispatcher, teacher_factory=_factory(teacher))
    start_run(db, dispatcher, run_id)
    (task, args) = dispatcher.queue[0]
    dispatcher.queue.append((task, args))  # the broker hands the same message out twice
    dispatcher.drain(runtime)
    runtime.close()
    assert sum(teacher.calls.values()) == 16
    assert (_count(db, Generation), _count(db, Rationale), _count(db, Label)) == (16, 16, 16)
    assert progress_of(db, run_id).generated == 16


def test_a_problem_that_keeps_failing_is_recorded_and_the_run_goes_on(db: Database) -> None:
    run_id = _setup(db, problems=10)
    with db.read() as session:
        first_problem = session.execute(text("SELECT MIN(id) FROM problem")).scalar_one()
    failing = _programs_teacher(db, fail_keys={first_problem})
    final = run_embedded(db, run_id, teacher_factory=_factory(failing))
    assert (final.status, final.generated, final.failed, final.labelled) == (RunStatus.completed, 18, 2, 18)
    with db.read() as session:
        errors = session.execute(
            select(Generation.error, Generation.attempts).where(Generation.status == "failed")
        ).all()
    assert [tuple(e) for e in errors] == [("HTTP 500 (scripted)", 5)] * 2

    healthy = _programs_teacher(db)
    final = run_embedded(db, run_id, teacher_factory=_factory(healthy), retry_failed=True)
    assert (final.generated, final.failed, final.labelled) == (20, 0, 20)
    assert sum(healthy.calls.values()) == 2  # only the failures were asked for again
    with db.read() as session:
        attempts = session.execute(select(Generation.attempts).where(Generation.problem_id == first_problem)).scalars()
        assert set(attempts) == {6}  # five scripted attempts, then one more


def test_zero_shot_cot_stores_the_first_stage_before_asking_the_second(db: Database) -> None:
    run_id = _setup(db, problems=6, template="zero-shot-cot", samples=1)
    with db.read() as session:
        golds: dict[int, str] = dict(session.execute(text("SELECT id, gold_answer FROM problem")).all())

    def reply(request: Any, sample: int) -> str:
        if isinstance(request.key, int):  # first stage: the rationale
            return f"Adding it all up gives {golds[request.key]}."
        pid, _ = request.key  # second stage: "Therefore, the answer is"
        return f" {golds[pid]}." if pid % 2 else " 7."

    crashing = ScriptedTeacher(reply, crash_after=6)  # all six rationales, then dies in stage two
    with pytest.raises(TeacherCrash):
        run_embedded(db, run_id, teacher_factory=_factory(crashing))
    with db.read() as session:
        stored = session.execute(select(Generation.output, Generation.answer_output)).all()
    assert len(stored) == 6 and all(output and answer is None for output, answer in stored)

    teacher = ScriptedTeacher(reply)
    final = run_embedded(db, run_id, teacher_factory=_factory(teacher))
    assert final.status is RunStatus.completed
    assert all(isinstance(key, tuple) for key, _ in teacher.calls)  # only second stages were asked
    with db.read() as session:
        verdicts = session.execute(text("SELECT verifier, COUNT(*) FROM label GROUP BY verifier")).all()
        correct = session.execute(text("SELECT correct FROM run_quality")).scalar_one()
    assert [tuple(v) for v in verdicts] == [("answer-match", 6)]
    assert correct == len([pid for pid in golds if pid % 2])


def test_lost_follow_up_messages_are_found_again(db: Database) -> None:
    """A broker that loses messages: execution tasks vanish; the database still knows the work."""
    run_id = _setup(db, problems=8)
    teacher = _programs_teacher(db)
    dispatcher = InlineDispatcher(TASKS)
    lossy = InlineDispatcher(TASKS)
    lossy.send = lambda task, *args: None if task == EXECUTE else InlineDispatcher.send(lossy, task, *args)  # type: ignore[method-assign]
    runtime = Runtime(db, lossy, teacher_factory=_factory(teacher))
    start_run(db, lossy, run_id)
    lossy.drain(runtime)
    assert progress_of(db, run_id).labelled == 0 and _count(db, Rationale) == 16

    runtime.dispatcher = dispatcher
    report = resume_run(db, dispatcher, run_id)
    assert (report.generate, report.execute) == (0, 1)  # one batch of 8 problems
    dispatcher.drain(runtime)
    runtime.close()
    assert progress_of(db, run_id).status is RunStatus.completed
    assert sum(teacher.calls.values()) == 16


def test_cancelled_runs_generate_nothing(db: Database) -> None:
    run_id = _setup(db, problems=8)
    teacher = _programs_teacher(db)
    with db.transaction() as session:
        session.get(SynthesisRun, run_id).status = RunStatus.cancelled  # type: ignore[union-attr]
        problem_ids = list(session.execute(text("SELECT id FROM problem ORDER BY id LIMIT 4")).scalars())
    runtime = Runtime(db, InlineDispatcher(TASKS), teacher_factory=_factory(teacher))
    assert generate_batch(runtime, run_id, problem_ids) == 0
    assert teacher.calls == {}


def test_api_keys_are_named_never_stored(db: Database) -> None:
    with db.transaction() as session:
        ingest_procedural(session, count=3, seed=1)
        with pytest.raises(CurationError, match="never pass an API key"):
            create_run(session, RunSpec(task="procedural", template="pad-program",
                                        teacher=TeacherSpec("openai", "gpt", {"api_key": "sk-secret"})))  # fmt: skip
        named = TeacherSpec("openai", "gpt", {"base_url": "http://x/v1", "api_key_env": "MY_KEY"})
        create_run(session, RunSpec(task="procedural", template="pad-program", teacher=named))
    with db.read() as session:
        parameters = session.execute(text("SELECT parameters FROM model")).scalar_one()
    assert "sk-secret" not in str(parameters) and "MY_KEY" in str(parameters)


def test_generation_tasks_are_routed_by_queue() -> None:
    from workers.tasks import ROUTES

    assert ROUTES == {GENERATE: "generation", EXECUTE: "execution", "curation.verify": "verification"}
