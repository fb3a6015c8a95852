"""The SQL views give the right numbers on known data, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from curation.db.session import Database
from curation.models import (
    AnswerType,
    Execution,
    ExecutionStatus,
    Generation,
    GenerationStatus,
    Label,
    LanguageModel,
    ModelRole,
    Problem,
    PromptTemplate,
    Rationale,
    RationaleKind,
    RationaleOrigin,
    Split,
    SplitPurpose,
    SynthesisRun,
    Task,
    TemplateStyle,
    Verdict,
)


@dataclass
class Scenario:
    runs: dict[str, int]
    problems: dict[str, int]
    refinements: dict[str, int]


def _problem(session: Session, task: Task, split: str, ref: str) -> Problem:
    problem = Problem(
        task_id=task.id,
        split=split,
        source_ref=ref,
        question=f"question {ref}",
        gold_answer_raw="1",
        gold_answer="1",
        content_hash=ref.ljust(64, "0"),
    )
    session.add(problem)
    session.flush()
    return problem


def _sample(
    session: Session,
    run: SynthesisRun,
    problem: Problem,
    index: int,
    verdict: Verdict | None,
    execution: tuple[ExecutionStatus, str | None] | None = None,
    *,
    kind: RationaleKind = RationaleKind.program,
    failed: bool = False,
) -> Rationale | None:
    generation = Generation(
        synthesis_run_id=run.id,
        problem_id=problem.id,
        sample_index=index,
        status=GenerationStatus.failed if failed else GenerationStatus.ok,
        output=None if failed else "out",
    )
    session.add(generation)
    session.flush()
    if failed:
        return None
    rationale = Rationale(
        problem_id=problem.id,
        generation_id=generation.id,
        kind=kind,
        origin=RationaleOrigin.teacher,
        body="body",
    )
    session.add(rationale)
    session.flush()
    _judge(session, rationale, verdict, execution)
    return rationale


def _judge(
    session: Session,
    rationale: Rationale,
    verdict: Verdict | None,
    execution: tuple[ExecutionStatus, str | None] | None,
    version: str = "1",
) -> None:
    execution_id = None
    if execution is not None:
        row = Execution(
            rationale_id=rationale.id, status=execution[0], error_type=execution[1], limits_hash=f"v{version}"
        )
        session.add(row)
        session.flush()
        execution_id = row.id
    if verdict is not None:
        session.add(
            Label(
                rationale_id=rationale.id,
                execution_id=execution_id,
                verifier="program",
                verifier_version=version,
                verdict=verdict,
            )
        )
        session.flush()


def build_scenario(session: Session) -> Scenario:
    ok, nameerror, syntax = (
        (ExecutionStatus.ok, None),
        (ExecutionStatus.error, "NameError"),
        (ExecutionStatus.syntax, "SyntaxError"),
    )
    c, i, e, u = Verdict.correct, Verdict.incorrect, Verdict.error, Verdict.unparseable
    task = Task(name="toy", answer_type=AnswerType.number)
    session.add(task)
    session.flush()
    session.add_all(
        [
            Split(task_id=task.id, name="train", purpose=SplitPurpose.train),
            Split(task_id=task.id, name="test", purpose=SplitPurpose.eval),
        ]
    )
    session.flush()
    p1, p2, p3 = (_problem(session, task, "train", f"p{n}") for n in (1, 2, 3))
    p4, p5 = _problem(session, task, "test", "p4"), _problem(session, task, "test", "p5")
    teacher = LanguageModel(role=ModelRole.teacher, backend="test", name="big-teacher")
    student = LanguageModel(role=ModelRole.student, backend="test", name="small-student")
    programs = PromptTemplate(name="pad", version=1, style=TemplateStyle.program, text="P", content_hash="a" * 64)
    cot = PromptTemplate(name="zs-cot", version=1, style=TemplateStyle.zero_shot_cot, text="C", content_hash="b" * 64)
    session.add_all([teacher, student, programs, cot])
    session.flush()

    def run(template: PromptTemplate, split: str, samples: int) -> SynthesisRun:
        r = SynthesisRun(
            teacher_id=teacher.id,
            template_id=template.id,
            task_id=task.id,
            split=split,
            samples_per_problem=samples,
            temperature=0.7,
        )
        session.add(r)
        session.flush()
        return r

    r1 = run(programs, "train", 4)
    _sample(session, r1, p1, 0, c, ok)
    _sample(session, r1, p1, 1, c, ok)
    _sample(session, r1, p1, 2, i, ok)
    broken = _sample(session, r1, p1, 3, e, nameerror)
    for index, (verdict, execution) in enumerate([(i, ok), (i, ok), (i, ok), (u, syntax)]):
        _sample(session, r1, p2, index, verdict, execution)
    relabelled = _sample(session, r1, p3, 0, i, ok)
    assert relabelled is not None
    # A newer verifier version (run under new limits, so with an execution of its own): the newer
    # label wins.
    _judge(session, relabelled, c, ok, version="2")
    _sample(session, r1, p3, 1, i, ok)
    _sample(session, r1, p3, 2, i, ok)
    _sample(session, r1, p3, 3, None, failed=True)

    r2 = run(cot, "train", 2)
    _sample(session, r2, p1, 0, c, kind=RationaleKind.cot)
    _sample(session, r2, p1, 1, i, kind=RationaleKind.cot)

    r3 = run(programs, "test", 12)
    for index in range(12):
        _sample(session, r3, p4, index, c if index < 3 else i, ok)

    assert broken is not None
    first = Rationale(
        problem_id=p1.id,
        parent_id=broken.id,
        model_id=student.id,
        kind=RationaleKind.program,
        origin=RationaleOrigin.refinement,
        body="fixed?",
        feedback="NameError: name 'x' is not defined",
    )
    session.add(first)
    session.flush()
    _judge(session, first, i, ok)
    second = Rationale(
        problem_id=p1.id,
        parent_id=first.id,
        model_id=student.id,
        kind=RationaleKind.program,
        origin=RationaleOrigin.refinement,
        body="fixed!",
        feedback="returned 3, expected 1",
    )
    session.add(second)
    session.flush()
    _judge(session, second, c, ok)
    return Scenario(
        runs={"r1": r1.id, "r2": r2.id, "r3": r3.id},
        problems={f"p{n}": p.id for n, p in enumerate((p1, p2, p3, p4, p5), start=1)},
        refinements={"broken": broken.id, "first": first.id, "second": second.id},
    )


@pytest.fixture
def scenario(db: Database) -> Scenario:
    with db.transaction() as session:
        return build_scenario(session)


def _rows(db: Database, query: str, **params: object) -> list[dict[str, object]]:
    with db.read() as session:
        result = session.execute(text(query), params)
        return [dict(row._mapping) for row in result]


def test_run_quality(db: Database, scenario: Scenario) -> None:
    (r1,) = _rows(db, "SELECT * FROM run_quality WHERE synthesis_run_id = :id", id=scenario.runs["r1"])
    assert {
        k: r1[k] for k in ("generations", "failed", "rationales", "labelled", "parsed", "executed_ok", "correct")
    } == {
        "generations": 12,
        "failed": 1,
        "rationales": 11,
        "labelled": 11,
        "parsed": 10,
        "executed_ok": 9,
        "correct": 3,
    }
    assert r1["pass_rate"] == pytest.approx(3 / 12)
    assert (r1["task"], r1["teacher"], r1["template"], r1["style"]) == (
        "toy",
        "big-teacher",
        "pad",
        "program",
    )
    (r2,) = _rows(db, "SELECT * FROM run_quality WHERE synthesis_run_id = :id", id=scenario.runs["r2"])
    assert (r2["generations"], r2["executed_ok"], r2["correct"]) == (2, 0, 1)


def test_run_quality_counts_the_execution_behind_the_current_label(db: Database, scenario: Scenario) -> None:
    """A program re-run under other limits (a newer execution, not yet labelled) does not change
    what executed_ok says about the verdicts counted beside it."""
    with db.transaction() as session:
        rationale_id = (
            session.execute(
                select(Rationale.id)
                .join(Generation, Generation.id == Rationale.generation_id)
                .where(
                    Generation.synthesis_run_id == scenario.runs["r1"],
                    Generation.problem_id == scenario.problems["p1"],
                )
                .order_by(Rationale.id)
            )
            .scalars()
            .first()
        )
        session.add(Execution(rationale_id=rationale_id, status=ExecutionStatus.timeout, limits_hash="tight"))
    (r1,) = _rows(db, "SELECT * FROM run_quality WHERE synthesis_run_id = :id", id=scenario.runs["r1"])
    assert (r1["executed_ok"], r1["correct"]) == (9, 3)


def test_quality_per_task_teacher_template(db: Database, scenario: Scenario) -> None:
    rows = _rows(db, "SELECT * FROM quality ORDER BY split, template")
    summary = [(r["split"], r["template"], r["runs"], r["generations"], r["correct"]) for r in rows]
    assert summary == [("test", "pad", 1, 12, 3), ("train", "pad", 1, 12, 3), ("train", "zs-cot", 1, 2, 1)]


def _pass_at_k(n: int, c: int, k: int) -> float | None:
    if n < k:
        return None
    return 1.0 - comb(n - c, k) / comb(n, k)


def test_problem_coverage_and_pass_at_k(db: Database, scenario: Scenario) -> None:
    rows = {(r["synthesis_run_id"], r["problem_id"]): r for r in _rows(db, "SELECT * FROM problem_coverage")}
    expected = {
        ("r1", "p1"): (4, 2),
        ("r1", "p2"): (4, 0),
        ("r1", "p3"): (3, 1),
        ("r2", "p1"): (2, 1),
        ("r3", "p4"): (12, 3),
    }
    assert len(rows) == len(expected)
    for (run, problem), (n, c) in expected.items():
        row = rows[(scenario.runs[run], scenario.problems[problem])]
        assert (row["samples"], row["correct_samples"], row["solved"]) == (n, c, int(c > 0))
        for k in (1, 5, 10):
            want = _pass_at_k(n, c, k)
            got = row[f"pass_at_{k}"]
            assert (got is None) if want is None else got == pytest.approx(want), (run, problem, k)
    assert rows[(scenario.runs["r3"], scenario.problems["p4"])]["pass_at_5"] == pytest.approx(1 - 126 / 792)


def test_unsolved_problems(db: Database, scenario: Scenario) -> None:
    rows = _rows(db, "SELECT problem_id, teacher_samples FROM unsolved_problem ORDER BY problem_id")
    assert [(r["problem_id"], r["teacher_samples"]) for r in rows] == [
        (scenario.problems["p2"], 4),
        (scenario.problems["p5"], 0),
    ]


def test_execution_error_breakdown(db: Database, scenario: Scenario) -> None:
    rows = _rows(
        db,
        "SELECT status, error_type, executions, share FROM execution_error_breakdown "
        "WHERE synthesis_run_id = :id ORDER BY executions DESC, error_type",
        id=scenario.runs["r1"],
    )
    assert [(r["status"], r["error_type"], r["executions"]) for r in rows] == [
        ("ok", "", 9),
        ("error", "NameError", 1),
        ("syntax", "SyntaxError", 1),
    ]
    assert [r["share"] for r in rows] == pytest.approx([9 / 11, 1 / 11, 1 / 11])
    refinements = _rows(db, "SELECT model, executions FROM execution_error_breakdown WHERE origin = 'refinement'")
    assert refinements == [{"model": "small-student", "executions": 2}]


def test_rationale_lineage(db: Database, scenario: Scenario) -> None:
    ids = scenario.refinements
    rows = _rows(
        db,
        "SELECT depth, ancestor_id, origin, verdict, error_type FROM rationale_lineage "
        "WHERE rationale_id = :id ORDER BY depth",
        id=ids["second"],
    )
    assert [(r["depth"], r["ancestor_id"], r["origin"], r["verdict"]) for r in rows] == [
        (0, ids["second"], "refinement", "correct"),
        (1, ids["first"], "refinement", "incorrect"),
        (2, ids["broken"], "teacher", "error"),
    ]
    assert rows[2]["error_type"] == "NameError"
    assert _rows(db, "SELECT * FROM rationale_lineage WHERE rationale_id = :id", id=ids["broken"]) == []


def test_refinement_outcome_answers_how_often_a_nameerror_is_fixed(db: Database, scenario: Scenario) -> None:
    rows = _rows(
        db,
        "SELECT rationale_id, parent_error_type, verdict, fixed FROM refinement_outcome ORDER BY rationale_id",
    )
    assert [(r["parent_error_type"], r["verdict"], r["fixed"]) for r in rows] == [
        ("NameError", "incorrect", 0),
        (None, "correct", 1),
    ]
    (rate,) = _rows(
        db,
        "SELECT AVG(fixed * 1.0) AS rate FROM refinement_outcome WHERE parent_error_type = 'NameError'",
    )
    assert rate["rate"] == 0


def test_current_label_is_the_latest(db: Database, scenario: Scenario) -> None:
    rows = _rows(db, "SELECT verifier_version, verdict FROM current_label WHERE verifier_version = '2'")
    assert rows == [{"verifier_version": "2", "verdict": "correct"}]
    total = int(_rows(db, "SELECT COUNT(*) AS n FROM current_label")[0]["n"])  # type: ignore[call-overload]
    labels = int(_rows(db, "SELECT COUNT(*) AS n FROM label")[0]["n"])  # type: ignore[call-overload]
    assert (total, labels) == (labels - 1, labels)


# --- Revision 0006 (views V3): each of these read wrong before it ------------------------------------


def _student_program(
    session: Session, problem: Problem, student: LanguageModel, execution: tuple[ExecutionStatus, str | None]
) -> Rationale:
    rationale = Rationale(
        problem_id=problem.id, model_id=student.id, kind=RationaleKind.program, origin=RationaleOrigin.student,
        body="student",
    )  # fmt: skip
    session.add(rationale)
    session.flush()
    _judge(session, rationale, Verdict.correct if execution[0] is ExecutionStatus.ok else Verdict.error, execution)
    return rationale


def test_execution_error_shares_are_per_model_with_two_students(db: Database, scenario: Scenario) -> None:
    ok, nameerror = (ExecutionStatus.ok, None), (ExecutionStatus.error, "NameError")
    with db.transaction() as session:
        p1 = session.get(Problem, scenario.problems["p1"])
        assert p1 is not None
        first = LanguageModel(role=ModelRole.student, backend="test", name="student-a")
        second = LanguageModel(role=ModelRole.student, backend="test", name="student-b")
        session.add_all([first, second])
        session.flush()
        for execution in (ok, nameerror):
            _student_program(session, p1, first, execution)
        for execution in (ok, ok, ok, ok, ok, ok, ok, nameerror):
            _student_program(session, p1, second, execution)
    rows = _rows(
        db,
        "SELECT model, status, executions, share FROM execution_error_breakdown WHERE origin = 'student' "
        "ORDER BY model, status",
    )
    assert [(r["model"], r["status"], r["executions"]) for r in rows] == [
        ("student-a", "error", 1),
        ("student-a", "ok", 1),
        ("student-b", "error", 1),
        ("student-b", "ok", 7),
    ]
    assert [r["share"] for r in rows] == pytest.approx([0.5, 0.5, 1 / 8, 7 / 8])  # not 1/10, 1/10, ...


def _run_programs(db: Database, run_id: int) -> list[int]:
    with db.read() as session:
        return list(
            session.execute(
                select(Rationale.id)
                .join(Generation, Generation.id == Rationale.generation_id)
                .where(Generation.synthesis_run_id == run_id, Rationale.kind == RationaleKind.program)
                .order_by(Rationale.id)
            ).scalars()
        )


def _described(db: Database, run_id: int) -> tuple[dict[str, object], dict[str, object]]:
    (quality,) = _rows(db, "SELECT executed_ok, correct FROM run_quality WHERE synthesis_run_id = :id", id=run_id)
    breakdown = {
        str(r["status"]): r["executions"]
        for r in _rows(
            db, "SELECT status, executions FROM execution_error_breakdown WHERE synthesis_run_id = :id", id=run_id
        )
    }
    return quality, breakdown


def test_a_re_executed_run_is_described_one_way_by_every_view(db: Database, scenario: Scenario) -> None:
    """Every program of r3 re-run under tight limits times out. Until those executions are
    labelled, every view describes the labelled ones (12 ok, 3 correct); once they are, every
    view describes the timeouts. Before 0006 the breakdown said "100% timeout" beside "3 correct"."""
    run_id = scenario.runs["r3"]
    programs = _run_programs(db, run_id)
    with db.transaction() as session:
        timeouts = [
            Execution(rationale_id=rid, status=ExecutionStatus.timeout, limits_hash="tight") for rid in programs
        ]
        session.add_all(timeouts)
    quality, breakdown = _described(db, run_id)
    assert (quality["executed_ok"], quality["correct"], breakdown) == (12, 3, {"ok": 12})
    lineage = _rows(db, "SELECT COUNT(*) AS n FROM current_execution WHERE status = 'timeout'")
    assert lineage == [{"n": 0}]
    with db.transaction() as session:  # a verifier run under the tight limits labels them
        for execution in timeouts:
            session.add(Label(rationale_id=execution.rationale_id, execution_id=execution.id, verifier="program",
                              verifier_version="tight", verdict=Verdict.error))  # fmt: skip
    quality, breakdown = _described(db, run_id)
    assert (quality["executed_ok"], quality["correct"], breakdown) == (0, 0, {"timeout": 12})


def test_a_refinement_of_a_correct_parent_fixes_nothing(db: Database, scenario: Scenario) -> None:
    with db.transaction() as session:
        correct_parent = (
            session.execute(
                select(Rationale)
                .join(Label, Label.rationale_id == Rationale.id)
                .where(Label.verdict == Verdict.correct, Rationale.origin == RationaleOrigin.teacher)
                .order_by(Rationale.id)
            )
            .scalars()
            .first()
        )
        assert correct_parent is not None
        child = Rationale(
            problem_id=correct_parent.problem_id, parent_id=correct_parent.id, kind=RationaleKind.program,
            origin=RationaleOrigin.refinement, body="the same, refined",
        )  # fmt: skip
        session.add(child)
        session.flush()
        _judge(session, child, Verdict.correct, (ExecutionStatus.ok, None))
        child_id = child.id
    (row,) = _rows(db, "SELECT parent_verdict, verdict, fixed FROM refinement_outcome WHERE rationale_id = :id",
                   id=child_id)  # fmt: skip
    assert row == {"parent_verdict": "correct", "verdict": "correct", "fixed": 0}
    fixed = _rows(db, "SELECT rationale_id FROM refinement_outcome WHERE fixed = 1")
    assert fixed == [{"rationale_id": scenario.refinements["second"]}]  # its parent was incorrect
    # The refinement-round views follow the same rule (before 0013 they called it repaired, and
    # its correct parent one of the failures).
    (step,) = _rows(db, "SELECT parent_verdict, verdict, repaired FROM refinement_step WHERE rationale_id = :id",
                    id=child_id)  # fmt: skip
    assert step == {"parent_verdict": "correct", "verdict": "correct", "repaired": 0}
    rates = _rows(db, "SELECT error_type, failures, repaired FROM repair_rate_by_error ORDER BY error_type")
    steps = _rows(
        db,
        "SELECT parent_error_type AS error_type, COUNT(*) AS failures, SUM(repaired) AS repaired "
        "FROM refinement_step WHERE rationale_id <> :id GROUP BY parent_error_type ORDER BY parent_error_type",
        id=child_id,
    )
    assert rates == steps  # the correct parent (a program that ran: "wrong value") is no failure


def test_a_problem_whose_every_teacher_call_failed_was_attempted(db: Database, scenario: Scenario) -> None:
    with db.transaction() as session:
        p5 = session.get(Problem, scenario.problems["p5"])
        r3 = session.get(SynthesisRun, scenario.runs["r3"])
        assert p5 is not None and r3 is not None
        for index in range(3):
            _sample(session, r3, p5, index, None, failed=True)
    rows = _rows(db, "SELECT problem_id, teacher_samples FROM unsolved_problem ORDER BY problem_id")
    assert [(r["problem_id"], r["teacher_samples"]) for r in rows] == [
        (scenario.problems["p2"], 4),
        (scenario.problems["p5"], 3),  # three failed calls: attempted, not "never attempted"
    ]
