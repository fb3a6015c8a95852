"""Synthesis runs end to end in embedded mode, on both databases: pay-once generation, crash and
resume, duplicate delivery, failures, two-stage zero-shot-CoT, lost follow-up messages."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, text

from curation.db.session import Database
from curation.errors import CurationError
from curation.ingestion.service import ingest_procedural
from curation.models import BatchLease, Generation, Label, Rationale, RationaleKind, RunStatus, SynthesisRun
from curation.repositories import leases
from tests.support.scripted_teacher import ScriptedTeacher, TeacherCrash
from workers import renewed_lease
from workers.batch_lease import BatchLeased, batch_key
from workers.dispatch import InlineDispatcher
from workers.driver import progress_of, run_embedded
from workers.runtime import Runtime
from workers.synthesis import (
    EXECUTE,
    GENERATE,
    RunSpec,
    create_run,
    generate_batch,
    resume_run,
    start_run,
)
from workers.tasks import TASKS
from workers.teachers.spec import TeacherSpec


def _setup(db: Database, *, problems: int = 30, template: str = "pad-program", samples: int = 2, **spec: Any) -> int:
    with db.transaction() as session:
        ingest_procedural(session, count=problems, seed=11)
        run = create_run(
            session,
            RunSpec(task="procedural", teacher=TeacherSpec("scripted", "ref"), template=template,
                    samples=samples, temperature=0.7, **{"batch_size": 8, **spec}),
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


def _factory(teacher: ScriptedTeacher) -> Callable[[Any, Any], ScriptedTeacher]:
    return lambda model, options: teacher


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
        tokens = session.execute(text("SELECT SUM(prompt_tokens), SUM(completion_tokens) FROM generation")).one()
    assert tuple(quality) == (60, 60, 60)
    assert tuple(tokens) == (30 * 12, 30 * 34)  # one call per problem for both samples, counted once


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
    # Every answer that arrived before the crash was stored (the task stores what it holds on the
    # way out), so nothing is asked twice; only a kill -9 can lose calls still in flight.
    assert stored == sum(crashing.calls.values())
    assert not set(crashing.calls) & set(fresh.calls)
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
        stored = " ".join(
            str(v) for v in session.execute(text("SELECT m.parameters, r.params FROM model m, synthesis_run r")).one()
        )
    assert "sk-secret" not in stored and "MY_KEY" in stored


def test_generation_tasks_are_routed_by_queue() -> None:
    from workers.tasks import ROUTES

    assert ROUTES == {GENERATE: "generation", EXECUTE: "execution", "curation.verify": "verification"}


def _slow_teacher(db: Database, release: threading.Event, started: threading.Event) -> ScriptedTeacher:
    programs = _reference_programs(db)

    def reply(request: Any, sample: int) -> str:
        started.set()
        release.wait(30)
        return programs[int(request.key)]

    return ScriptedTeacher(reply)


def test_a_concurrent_duplicate_waits_for_the_batch_instead_of_asking_again(db: Database) -> None:
    """A message redelivered while its first delivery still runs: the second finds the batch
    claimed and defers; once the first is done, the second has nothing left to ask for."""
    run_id = _setup(db, problems=8, batch_size=8)
    release, started = threading.Event(), threading.Event()
    teacher = _slow_teacher(db, release, started)
    runtime = Runtime(db, InlineDispatcher(TASKS), teacher_factory=_factory(teacher))
    start_run(db, InlineDispatcher(TASKS), run_id)
    with db.read() as session:
        batch = list(session.execute(text("SELECT id FROM problem ORDER BY id")).scalars())
    first = threading.Thread(target=generate_batch, args=(runtime, run_id, batch))
    first.start()
    assert started.wait(30)
    with pytest.raises(BatchLeased) as deferred:
        generate_batch(runtime, run_id, batch)
    assert 0 < deferred.value.retry_in <= 60
    assert resume_run(db, InlineDispatcher(TASKS), run_id).leased == 1  # a resume leaves it alone too
    release.set()
    first.join(30)
    assert generate_batch(runtime, run_id, batch) == 0  # the redelivery, retried: nothing missing
    runtime.close()
    assert sum(teacher.calls.values()) == 16 and set(teacher.calls.values()) == {1}
    assert _count(db, BatchLease) == 0  # given back


def test_a_batch_held_by_a_dead_process_is_taken_over_at_once(db: Database) -> None:
    run_id = _setup(db, problems=4, batch_size=4)
    with db.read() as session:
        batch = list(session.execute(text("SELECT id FROM problem ORDER BY id")).scalars())
    gone = subprocess.Popen(["true"])
    gone.wait()
    holder = f"{renewed_lease.this_machine()}/{gone.pid}/deadbeef"
    with db.transaction() as session:
        assert leases.claim(session, run_id, batch_key(batch), holder, seconds=3600)
        session.get(SynthesisRun, run_id).status = RunStatus.running  # type: ignore[union-attr]
    assert resume_run(db, InlineDispatcher(TASKS), run_id).generate == 1  # not left to the dead
    teacher = _programs_teacher(db)
    runtime = Runtime(db, InlineDispatcher(TASKS), teacher_factory=_factory(teacher))
    assert generate_batch(runtime, run_id, batch) == 8
    runtime.close()


def test_a_failed_second_stage_is_retried_alone(db: Database) -> None:
    """Zero-shot-CoT: when "Therefore, the answer is" fails, the paid-for rationale is kept and only
    the second stage is asked again."""
    run_id = _setup(db, problems=4, template="zero-shot-cot", samples=1)
    with db.read() as session:
        first_problem = session.execute(text("SELECT MIN(id) FROM problem")).scalar_one()

    def reply(request: Any, sample: int) -> str:
        return "It is 4." if isinstance(request.key, int) else " 4."

    failing = ScriptedTeacher(reply, fail_keys={(first_problem, 0)})
    final = run_embedded(db, run_id, teacher_factory=_factory(failing))
    assert (final.status, final.generated, final.failed) == (RunStatus.completed, 3, 1)

    healthy = ScriptedTeacher(reply)
    final = run_embedded(db, run_id, teacher_factory=_factory(healthy), retry_failed=True)
    assert (final.status, final.generated, final.failed, final.labelled) == (RunStatus.completed, 4, 0, 4)
    assert dict(healthy.calls) == {((first_problem, 0), 0): 1}


def test_counters_recounted_mid_run_count_two_stage_samples_when_both_stages_are_in(db: Database) -> None:
    run_id = _setup(db, problems=4, template="zero-shot-cot", samples=1)
    crashing = ScriptedTeacher(lambda request, sample: "It is 4.", crash_after=4)  # dies before stage two
    with pytest.raises(TeacherCrash):
        run_embedded(db, run_id, teacher_factory=_factory(crashing))
    resume_run(db, InlineDispatcher(TASKS), run_id)  # recounts from the tables
    progress = progress_of(db, run_id)
    assert (progress.generated, progress.failed) == (0, 0)


def test_problems_ingested_later_do_not_join_or_shift_a_run(db: Database) -> None:
    run_id = _setup(db, problems=10, samples=1)
    with db.transaction() as session:
        ingest_procedural(session, count=10, seed=99)  # the same task grows after the run was made
    final = run_embedded(db, run_id, teacher_factory=_factory(_programs_teacher(db)))
    assert (final.status, final.expected, final.generated, final.labelled) == (RunStatus.completed, 10, 10, 10)
    with db.read() as session:
        assert (
            session.execute(text("SELECT MAX(problem_id) FROM generation")).scalar_one()
            <= session.execute(text("SELECT MIN(id) + 9 FROM problem")).scalar_one()
        )


def test_each_run_reaches_its_teacher_with_its_own_options(db: Database) -> None:
    with db.transaction() as session:
        ingest_procedural(session, count=2, seed=1)
        runs = [
            create_run(session, RunSpec(task="procedural", template="pad-program",
                                        teacher=TeacherSpec("openai", "same-model", {"base_url": url})))
            for url in ("http://a:8000/v1", "http://b:8000/v1")
        ]  # fmt: skip
        assert runs[0].teacher_id == runs[1].teacher_id
        run_ids = [run.id for run in runs]
    built: list[dict[str, Any] | None] = []
    teacher = _programs_teacher(db)

    def factory(model: Any, options: dict[str, Any] | None) -> ScriptedTeacher:
        built.append(options)
        return teacher

    for run_id in run_ids:
        run_embedded(db, run_id, teacher_factory=factory)
    assert [o["base_url"] for o in built if o] == ["http://a:8000/v1", "http://b:8000/v1"]


def test_few_shot_program_output_is_cut_at_an_invented_next_question(db: Database) -> None:
    from curation.rationales import rationale_body

    output = 'def solution():\n    """Q: a docstring"""\n    return 4\n\nQuestion: What is 2 + 3?\nSolution:\n'
    assert rationale_body(output, RationaleKind.program) == 'def solution():\n    """Q: a docstring"""\n    return 4'
    run_id = _setup(db, problems=2, samples=1)
    with db.read() as session:
        params = session.get(SynthesisRun, run_id).params  # type: ignore[union-attr]
    assert params is not None and params["stop"] == ["\nQuestion:", "\nQ:"]


def test_teacher_text_a_database_cannot_hold_is_stored_readably(db: Database) -> None:
    """PostgreSQL text refuses NUL; a teacher can emit one (and lone surrogates)."""
    run_id = _setup(db, problems=2, samples=1)
    teacher = ScriptedTeacher(lambda request, sample: "def solution():\n    return '4\x00\ud800'\n")
    final = run_embedded(db, run_id, teacher_factory=_factory(teacher))
    assert (final.status, final.generated) == (RunStatus.completed, 2)
    with db.read() as session:
        outputs = set(session.execute(select(Generation.output)).scalars())
    assert outputs == {"def solution():\n    return '4\ufffd?'\n"}


def test_a_run_in_which_every_teacher_call_failed_is_failed(db: Database) -> None:
    """Not a completed run with no generations: failed, with the teacher's error; --retry-failed revives it."""
    run_id = _setup(db, problems=5)
    with db.read() as session:
        problems = set(session.execute(text("SELECT id FROM problem")).scalars())
    final = run_embedded(db, run_id, teacher_factory=_factory(_programs_teacher(db, fail_keys=problems)))
    assert (final.status, final.generated, final.failed) == (RunStatus.failed, 0, 10)
    with db.read() as session:
        error = session.execute(select(SynthesisRun.error).where(SynthesisRun.id == run_id)).scalar_one()
    assert error is not None and error.startswith("every sample failed") and error.endswith("HTTP 500 (scripted)")
    final = run_embedded(db, run_id, teacher_factory=_factory(_programs_teacher(db)), retry_failed=True)
    assert (final.status, final.generated, final.failed, final.labelled) == (RunStatus.completed, 10, 0, 10)


def test_a_run_where_only_some_calls_failed_completes(db: Database) -> None:
    run_id = _setup(db, problems=5)
    with db.read() as session:
        one = session.execute(text("SELECT MIN(id) FROM problem")).scalar_one()
    final = run_embedded(db, run_id, teacher_factory=_factory(_programs_teacher(db, fail_keys={one})))
    assert (final.status, final.generated, final.failed) == (RunStatus.completed, 8, 2)


def test_zero_shot_cot_stage_two_asks_per_answer_type_and_continues_the_turn(db: Database, shared_data: Any) -> None:
    """Multiple choice: Kojima's "among A through ..." trigger, the teacher's own turn continued,
    and the order the options were shown in stored with each generation."""
    from curation.ingestion.service import ingest_files

    with db.transaction() as session:
        ingest_files(session, "date_understanding", [shared_data / "bigbench/date_understanding.json"],
                     ftcot_split=shared_data / "ftcot/split/date_understanding__default.json")  # fmt: skip
        spec = RunSpec(task="date_understanding", split="test", limit=3, teacher=TeacherSpec("scripted", "ref"),
                       template="zero-shot-cot")  # fmt: skip
        run_id = create_run(session, spec).id
        golds: dict[int, str] = {
            pid: gold for pid, gold in session.execute(text("SELECT id, gold_answer FROM problem"))
        }
    seen: list[Any] = []

    def reply(request: Any, sample: int) -> str:
        if isinstance(request.key, int):
            return " Counting the days gives the date."
        seen.append(request.prompt)
        return f" {golds[request.key[0]]}."

    final = run_embedded(db, run_id, teacher_factory=_factory(ScriptedTeacher(reply)))
    assert final.status is RunStatus.completed
    # The trigger names the first and last of each problem's own letters (some have five options).
    assert len(seen) == 3 and all(
        re.search(r"\nTherefore, among A through [EF], the answer is$", p.text) for p in seen
    )
    assert all(p.continues_assistant and p.messages()[1]["role"] == "assistant" for p in seen)
    assert (
        seen[0].messages()[1]["content"].startswith(" Counting the days gives the date.\nTherefore, among A through")
    )
    with db.read() as session:
        rows = session.execute(text(
            "SELECT g.choice_order, p.choices, l.verdict FROM generation g JOIN problem p ON p.id = g.problem_id "
            "JOIN rationale r ON r.generation_id = g.id JOIN label l ON l.rationale_id = r.id"
        )).all()  # fmt: skip
    for order, choices, verdict in rows:
        order = order if isinstance(order, list) else json.loads(order)
        choices = choices if isinstance(choices, list) else json.loads(choices)
        assert order == [c["label"] for c in choices] and verdict == "correct"


def test_an_http_teacher_of_a_two_stage_template_asks_completions_unless_told(db: Database) -> None:
    with db.transaction() as session:
        ingest_procedural(session, count=3, seed=1)
        runs = {
            (template, api): create_run(session, RunSpec(
                task="procedural", template=template,
                teacher=TeacherSpec("openai", "m", {"base_url": "http://x/v1", **({"api": api} if api else {})}),
            )).params["teacher"]["api"]  # type: ignore[index]
            for template, api in [("zero-shot-cot", None), ("pad-program", None), ("zero-shot-cot", "chat")]
        }  # fmt: skip
    assert runs == {
        ("zero-shot-cot", None): "completions",
        ("pad-program", None): "chat",
        ("zero-shot-cot", "chat"): "chat",
    }
