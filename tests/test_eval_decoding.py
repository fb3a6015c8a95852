"""`curation eval` outputs as generations of the evaluation's own run, and its decoding modes
(greedy, best-of-N with a selection, step-beam with scorers) on a tiny random Llama, on both
databases: each mode is its own evaluation row, every output a generation with its tokens and
latency and a rationale linked to it, the counts those of the selected outputs, reruns generate
only what is missing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text, update

from curation.db.session import Database
from curation.errors import CurationError
from curation.ingestion.service import ingest_procedural
from curation.models import (
    AnswerType,
    Evaluation,
    Generation,
    Label,
    PromptTemplate,
    Rationale,
    RationaleOrigin,
    RunStatus,
    SynthesisRun,
    TemplateStyle,
    TrainingStatus,
)
from curation.student_prompt import student_prompt
from curation.templates import STUDENT_TEMPLATES, CompiledTemplate, ProblemView
from tests.conftest import ROOT
from tests.support.tiny_model import build_tiny_llama
from trainer.decoding.modes import Decoding
from trainer.evaluation import EvalSpec, evaluate
from trainer.verifier import VerifierExample, VerifierTraining, train_verifier
from workers.sandbox import Sandbox
from workers.synthesis import ResumeReport, resume_run

PROBLEMS = 3


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def sandbox() -> object:
    with Sandbox(in_flight=4) as box:
        yield box


def _spec(model: Path, decoding: Decoding, **options: object) -> EvalSpec:
    fields: dict[str, object] = {
        "model": str(model), "task": "procedural", "split": "test", "prompt_format": "pad", "limit": PROBLEMS,
        "max_new_tokens": 24, "device": "cpu", "decoding": decoding,
    }  # fmt: skip
    return EvalSpec(**{**fields, **options})  # type: ignore[arg-type]


def _problems(db: Database) -> None:
    with db.transaction() as session:
        ingest_procedural(session, count=PROBLEMS + 1, seed=1, split="test")


def _check_outputs(db: Database, evaluation_id: int, samples: int, *, lost: int = 0) -> Evaluation:
    """Every output a generation of the evaluation's run with its figures; one selected per problem."""
    with db.read() as session:
        evaluation = session.get(Evaluation, evaluation_id)
        assert evaluation is not None and evaluation.status is TrainingStatus.completed
        run = session.get(SynthesisRun, evaluation.synthesis_run_id)
        assert run is not None and run.teacher_id == evaluation.model_id and run.status is RunStatus.completed
        assert run.split == "test" and run.params is not None and run.params["decoding"] == evaluation.decoding
        template = session.get(PromptTemplate, run.template_id)
        assert template is not None and template.style is TemplateStyle.student and template.name == "student-pad"
        generations = session.execute(select(Generation).where(Generation.synthesis_run_id == run.id)).scalars().all()
        assert len(generations) == PROBLEMS * samples == run.generations_done
        assert all(g.prompt_tokens and g.prompt_tokens > 0 for g in generations)
        assert all(g.completion_tokens is not None and g.latency_ms is not None for g in generations)
        assert evaluation.metrics is not None
        spent = evaluation.metrics["student_completion_tokens"]  # what was paid, a lost output's too
        assert spent - lost <= sum(g.completion_tokens or 0 for g in generations) <= spent
        rationales = (
            session.execute(select(Rationale).where(Rationale.generation_id.in_([g.id for g in generations])))
            .scalars()
            .all()
        )
        assert len(rationales) == len(generations)
        by_generation = {g.id: g for g in generations}
        assert all(r.sample_index == by_generation[r.generation_id].sample_index for r in rationales)  # type: ignore[index]
        assert all(r.origin is RationaleOrigin.student and r.model_id == evaluation.model_id for r in rationales)
        selected = [r for r in rationales if r.evaluation_id == evaluation_id]
        assert len(selected) == len({r.problem_id for r in selected}) == PROBLEMS
        labelled = session.execute(
            select(func.count(func.distinct(Label.rationale_id))).where(
                Label.rationale_id.in_([r.id for r in rationales])
            )
        ).scalar_one()
        assert labelled == len(rationales) == run.rationales_labelled  # the unselected samples too
    assert evaluation.correct + evaluation.incorrect + evaluation.unparseable + evaluation.errors == PROBLEMS
    assert evaluation.metrics is not None and evaluation.metrics["wall_seconds"] > 0
    assert evaluation.metrics["sandbox_programs"] >= evaluation.metrics["verification_programs"] >= PROBLEMS
    return evaluation


def test_student_templates_render_the_student_prompt() -> None:
    view = ProblemView("  Sam has 3 apples. ", [{"label": "A", "text": "3"}], "t", AnswerType.number)
    for fmt, kind in (("ftcot", "cot"), ("pad", "program")):
        name, text = STUDENT_TEMPLATES[fmt]
        row = PromptTemplate(name=name, version=1, style=TemplateStyle.student, text=text, content_hash="")
        assert CompiledTemplate(row).render(view).text == student_prompt(kind, view.question, view.choices)


@pytest.mark.slow
def test_greedy_sample_and_step_beam_are_evaluations_of_generations(
    db: Database, tiny_model_dir: Path, sandbox: Sandbox
) -> None:
    _problems(db)
    greedy = evaluate(db, _spec(tiny_model_dir, Decoding()), sandbox_factory=lambda: sandbox)
    assert greedy.generated == PROBLEMS
    row = _check_outputs(db, greedy.evaluation_id, 1)
    assert row.decoding is not None and row.decoding["method"] == "greedy"
    assert row.metrics is not None and row.metrics["decode_sandbox_programs"] == 0

    best = evaluate(
        db, _spec(tiny_model_dir, Decoding("sample", samples=3, select="exec-vote")), sandbox_factory=lambda: sandbox
    )
    assert best.evaluation_id != greedy.evaluation_id and best.generated == PROBLEMS
    row = _check_outputs(db, best.evaluation_id, 3)
    best_metrics = row.metrics
    assert row.metrics is not None and row.metrics["decode_sandbox_programs"] > 0
    assert row.decoding is not None and (row.decoding["samples"], row.decoding["select"]) == (3, "exec-vote")
    with db.read() as session:
        metas = (
            session.execute(
                select(Generation.meta)
                .join(Rationale, Rationale.generation_id == Generation.id)
                .where(Rationale.evaluation_id == best.evaluation_id)
            )
            .scalars()
            .all()
        )
    assert all(m is not None and m["selected"] == "exec-vote" for m in metas)

    beam = evaluate(
        db, _spec(tiny_model_dir, Decoding("step-beam", beams=2, expand=2, scorers=("exec", "logprob"), max_steps=4)),
        sandbox_factory=lambda: sandbox,
    )  # fmt: skip
    assert len({greedy.evaluation_id, best.evaluation_id, beam.evaluation_id}) == 3
    row = _check_outputs(db, beam.evaluation_id, 1)
    assert row.decoding is not None and row.decoding["scorers"] == ["exec", "logprob"]

    again = evaluate(
        db, _spec(tiny_model_dir, Decoding("sample", samples=3, select="exec-vote")), sandbox_factory=lambda: sandbox
    )
    assert again.evaluation_id == best.evaluation_id and again.generated == 0 and again.correct == best.correct
    assert row_metrics(db, best.evaluation_id) == best_metrics  # a rerun that made nothing cost nothing

    # docs/sql.md's examples, on these rows.
    section = (ROOT / "docs/sql.md").read_text().split("## Evaluations and their outputs")[1].split("\n## ")[0]
    costs, samples = re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)
    with db.read() as session:
        per_evaluation = {r.evaluation_id: r for r in session.execute(text(costs))}
        every_sample = [r for r in session.execute(text(samples)) if r.evaluation_id == best.evaluation_id]
    assert {e: (r.template, r.generations) for e, r in per_evaluation.items()} == {
        greedy.evaluation_id: ("student-pad", PROBLEMS), best.evaluation_id: ("student-pad", 3 * PROBLEMS),
        beam.evaluation_id: ("student-pad", PROBLEMS),
    }  # fmt: skip
    assert best_metrics is not None
    assert per_evaluation[best.evaluation_id].completion_tokens == best_metrics["student_completion_tokens"]
    assert len(every_sample) == 3 * PROBLEMS and sum(r.selected for r in every_sample) == PROBLEMS
    assert all(r.verdict is not None for r in every_sample)
    # An output lost (its generation deleted, its rationale with it): the rerun makes that one only.
    with db.transaction() as session:
        run_id = session.execute(
            select(Evaluation.synthesis_run_id).where(Evaluation.id == greedy.evaluation_id)
        ).scalar_one()
        assert run_id is not None
        lost = session.execute(
            select(Generation).where(Generation.synthesis_run_id == run_id).order_by(Generation.id).limit(1)
        ).scalar_one()
        session.execute(delete(Rationale).where(Rationale.generation_id == lost.id))
        session.delete(lost)
    # Until the rerun, the run is unfinished: no worker resumes an evaluation's run.
    sent: list[str] = []

    class Recording:
        def send(self, task: str, *args: object) -> None:
            sent.append(task)

    with db.transaction() as session:
        session.execute(update(SynthesisRun).where(SynthesisRun.id == run_id).values(status=RunStatus.running))
    assert resume_run(db, Recording(), run_id) == ResumeReport() and sent == []
    redone = evaluate(db, _spec(tiny_model_dir, Decoding()), sandbox_factory=lambda: sandbox)
    assert redone.evaluation_id == greedy.evaluation_id and redone.generated == 1
    _check_outputs(db, greedy.evaluation_id, 1, lost=lost.completion_tokens or 0)


def row_metrics(db: Database, evaluation_id: int) -> dict[str, object] | None:
    with db.read() as session:
        row = session.get(Evaluation, evaluation_id)
        return row.metrics if row else None


def test_decoding_modes_are_checked(db: Database, tiny_model_dir: Path) -> None:
    _problems(db)
    cases = [
        (Decoding("sample", select="verifier"), "--verifier PATH"),
        (Decoding("step-beam", scorers=("exec", "oracle")), "--scorer"),
        (Decoding("step-beam", beams=3, expand=2), "multiple"),
        (Decoding("nucleus"), "--decode 'nucleus'"),
    ]
    for decoding, message in cases:
        with pytest.raises((CurationError, ValueError), match=message):
            evaluate(db, _spec(tiny_model_dir, decoding))
    with pytest.raises(CurationError, match="exec-vote runs programs"):
        evaluate(db, _spec(tiny_model_dir, Decoding("sample", select="exec-vote"), prompt_format="ftcot"))
    with pytest.raises(CurationError, match="not with --decode sample"):
        evaluate(db, _spec(tiny_model_dir, Decoding("sample"), repair_rounds=1))
    with db.read() as session:  # nothing half-written
        assert session.execute(select(func.count()).select_from(Evaluation)).scalar_one() == 0


@pytest.mark.slow
def test_verifier_selection_and_scorer_and_cot_majority(
    sqlite_db: Database, tiny_model_dir: Path, sandbox: Sandbox, tmp_path: Path
) -> None:
    db = sqlite_db
    _problems(db)
    examples = [
        VerifierExample(
            f"q{i}", "def solution():\n    return 1\n" if i % 2 else "def solution():\n    return x\n", bool(i % 2)
        )
        for i in range(4)
    ]
    train_verifier(tiny_model_dir, examples, tmp_path / "verifier", VerifierTraining(epochs=1, batch_size=4))
    folder = str(tmp_path / "verifier")
    picked = evaluate(
        db, _spec(tiny_model_dir, Decoding("sample", samples=2, select="verifier", verifier=folder)),
        sandbox_factory=lambda: sandbox,
    )  # fmt: skip
    row = _check_outputs(db, picked.evaluation_id, 2)
    assert row.decoding is not None and row.decoding["verifier"] == str(Path(folder).resolve())
    searched = evaluate(
        db, _spec(tiny_model_dir, Decoding("step-beam", beams=2, expand=1, scorers=("verifier",), max_steps=3,
                                           verifier=folder)),
        sandbox_factory=lambda: sandbox,
    )  # fmt: skip
    _check_outputs(db, searched.evaluation_id, 1)
    # A CoT student: majority over answers extracted from the text; nothing runs while decoding.
    cot = evaluate(db, _spec(tiny_model_dir, Decoding("sample", samples=2), prompt_format="ftcot"))
    with db.read() as session:
        evaluation = session.get(Evaluation, cot.evaluation_id)
        assert evaluation is not None and evaluation.metrics is not None
        assert evaluation.metrics["sandbox_programs"] == 0 and evaluation.executed_ok is None
        template = session.execute(
            select(PromptTemplate.name)
            .join(SynthesisRun, SynthesisRun.template_id == PromptTemplate.id)
            .where(SynthesisRun.id == evaluation.synthesis_run_id)
        ).scalar_one()
    assert template == "student-ftcot" and cot.problems == PROBLEMS
