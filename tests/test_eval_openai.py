"""`curation eval --model openai:MODEL --base-url URL`: a student served by an OpenAI-compatible
server (vLLM serving a checkpoint, here the project's stub server) is evaluated like a local one:
its outputs are generations of the evaluation's run with the server's token counts, the programs
run in the sandbox, and the accuracy is what the labels say."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from curation.db.session import Database
from curation.ingestion.service import ingest_procedural
from curation.models import Evaluation, Generation, LanguageModel, Problem, Rationale, RationaleOrigin
from curation.procedural import procedural_problem
from tests.support.stub_server import StubServer, by_prompt, fixed
from trainer.evaluation import EvalSpec, evaluate

WRONG = "def solution():\n    result = 0\n    return result\n"
BROKEN = "def solution():\n    result = undefined_name + 1\n    return result\n"


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_a_served_student_is_evaluated_like_a_local_one(db: Database) -> None:
    with db.transaction() as session:
        ingest_procedural(session, count=4, seed=1, split="test")
    problems = [procedural_problem(1, index) for index in range(4)]
    # Two right programs (the problems' own), one wrong value, one that raises.
    replies = {
        problems[0].question: str(problems[0].meta["reference_program"]),  # type: ignore[index]
        problems[1].question: str(problems[1].meta["reference_program"]),  # type: ignore[index]
        problems[2].question: WRONG,
    }
    with StubServer(by_prompt(replies, default=fixed(BROKEN))) as server:
        spec = EvalSpec(model="openai:served-student", base_url=server.url, task="procedural", split="test",
                        prompt_format="pad")  # fmt: skip
        report = evaluate(db, spec)
        again = evaluate(db, spec)
    assert (report.problems, report.generated, report.correct, report.incorrect, report.errors) == (4, 4, 2, 1, 1)
    assert report.executed_ok == 3 and report.accuracy == 0.5
    assert again.evaluation_id == report.evaluation_id and again.generated == 0 and again.correct == 2
    with db.read() as session:
        evaluation = session.get(Evaluation, report.evaluation_id)
        assert evaluation is not None and evaluation.synthesis_run_id is not None
        model = session.get(LanguageModel, evaluation.model_id)
        assert model is not None and (model.backend, model.name) == ("openai", "served-student")
        rows = session.execute(
            select(Problem.question, Rationale.origin, Rationale.body, Generation.completion_tokens)
            .join(Rationale, Rationale.problem_id == Problem.id)
            .join(Generation, Generation.id == Rationale.generation_id)
            .where(Rationale.evaluation_id == report.evaluation_id)
            .order_by(Problem.id)
        ).all()
    assert [r.origin for r in rows] == [RationaleOrigin.student] * 4
    assert all(r.completion_tokens and r.completion_tokens > 0 for r in rows)  # the server's usage counts
    assert rows[3].body.strip() == BROKEN.strip()


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_an_evaluation_leaves_the_teacher_views_as_they_were(db: Database) -> None:
    """An evaluation's outputs are generations of its own run (a `student` template): no teacher
    ran there, so run_quality, quality and unsolved_problem read the same before and after it."""
    with db.transaction() as session:
        ingest_procedural(session, count=3, seed=2, split="test")
    queries = {
        "run_quality": "SELECT * FROM run_quality ORDER BY synthesis_run_id",
        "quality": "SELECT * FROM quality ORDER BY task, split, teacher, template",
        "unsolved_problem": "SELECT problem_id, teacher_samples FROM unsolved_problem ORDER BY problem_id",
    }

    def views() -> dict[str, list[tuple[object, ...]]]:
        with db.read() as session:
            return {name: [tuple(r) for r in session.execute(text(sql))] for name, sql in queries.items()}

    before = views()
    with StubServer(fixed(BROKEN)) as server:
        spec = EvalSpec(model="openai:served-student", base_url=server.url, task="procedural", split="test",
                        prompt_format="pad")  # fmt: skip
        report = evaluate(db, spec)
    assert report.generated == 3
    assert views() == before
    assert [samples for _, samples in before["unsolved_problem"]] == [0, 0, 0]
