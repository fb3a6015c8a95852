"""Self-refinement: failures collected on training splits only, repairs with their lineage, a full
refine round (collect, build, snapshot, train, evaluate) with a tiny random student, and the
evaluation-time repair loop."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from curation.db.session import Database
from curation.errors import CurationError
from curation.ingestion.service import ingest_procedural
from curation.models import (
    Evaluation,
    LanguageModel,
    ModelRole,
    Problem,
    Rationale,
    RationaleKind,
    RationaleOrigin,
    Snapshot,
    Task,
    TrainingRun,
    TrainingStatus,
)
from curation.references import import_procedural_references
from curation.snapshots.create import create_snapshot
from curation.snapshots.export import export_snapshot
from curation.student_prompt import REPAIR_FAULTY, repair_prompt
from tests.conftest import ROOT
from trainer.ablation import AblationSpec, refinement_rounds, run_ablation
from trainer.config import TrainConfig
from trainer.evaluation import EvalSpec, evaluate
from trainer.refinement.build import build_repairs, verify_programs
from trainer.refinement.collect import collect_failures
from trainer.refinement.rounds import RefineSpec, _where, refine
from trainer.runs import create_training_run, execute_training_run
from workers.sandbox import Sandbox
from workers.verification import verify

FAILING = {
    "name": "def solution():\n    total = 3 + 4\n    return totl\n",
    "wrong": "def solution():\n    return -12345\n",
    "syntax": "def solution(:\n    return 1\n",
}


def _problems(db: Database) -> int:
    with db.transaction() as session:
        ingest_procedural(session, count=6, seed=0, split="train")
        ingest_procedural(session, count=3, seed=1, split="test")
        run_id = import_procedural_references(session).run_id
    with Sandbox() as sandbox:
        verify(db, sandbox, run_id=run_id)
    return run_id


def _fake_student_run(db: Database) -> int:
    """A completed training run row with outputs on train and test made by hand (no model needed:
    what is tested is which rows refinement reads)."""
    with db.transaction() as session:
        snapshot, _ = create_snapshot(session, "refs", {"kinds": ["program"], "origins": ["reference"]
                                                         , "splits": ["train"]})  # fmt: skip
        student = LanguageModel(role=ModelRole.student, backend="transformers", name="fake-student", revision="x")
        session.add(student)
        session.flush()
        run = TrainingRun(
            snapshot_id=snapshot.id, base_model_id=student.id, output_model_id=student.id,
            checkpoint_path="/nonexistent", config={"format": "pad"}, status=TrainingStatus.completed,
        )  # fmt: skip
        session.add(run)
        session.flush()
        task = session.execute(select(Task).where(Task.name == "procedural")).scalar_one()
        ids = []
        for split in ("train", "test"):
            evaluation = Evaluation(
                model_id=student.id, training_run_id=run.id, task_id=task.id, split=split,
                decoding={"method": "greedy"}, status=TrainingStatus.completed, problems=6 if split == "train" else 3,
            )  # fmt: skip
            session.add(evaluation)
            session.flush()
            problems = session.execute(select(Problem.id).where(Problem.split == split).order_by(Problem.id)).scalars()
            for pid, body in zip(problems, [*FAILING.values(), *FAILING.values()], strict=False):
                row = Rationale(
                    problem_id=pid, evaluation_id=evaluation.id, model_id=student.id, sample_index=0,
                    kind=RationaleKind.program, origin=RationaleOrigin.student, body=body,
                )  # fmt: skip
                session.add(row)
                session.flush()
                ids.append(row.id)
        run_id = run.id
    verify_programs(db, ids, None)
    return run_id


def test_refinement_never_reads_an_evaluation_split(db: Database) -> None:
    _problems(db)
    run_id = _fake_student_run(db)
    with db.read() as session:
        with pytest.raises(CurationError, match="split 'test' is an evaluation split of procedural"):
            collect_failures(session, run_id, "test")
        failures = collect_failures(session, run_id, "train")
        train = set(session.execute(select(Problem.id).where(Problem.split == "train")).scalars())
    with pytest.raises(CurationError, match="split 'test' is an evaluation split"):
        refine(db, RefineSpec(training_run_id=run_id, split="test"))
    assert len(failures) == 6 and {f.problem_id for f in failures} <= train
    feedback = {f.body: f.feedback for f in failures}
    assert feedback[FAILING["name"]].startswith("NameError: ") and "totl" in feedback[FAILING["name"]]
    assert feedback[FAILING["wrong"]] == "the program returned -12345, which is wrong"
    assert feedback[FAILING["syntax"]].startswith("SyntaxError")

    built = build_repairs(db, failures)
    assert built.created == 6 and not built.without_verified
    assert build_repairs(db, failures).created == 0  # built twice: nothing new
    with db.read() as session:
        rows = session.execute(
            text("SELECT round, mode, parent_id, root_id, split, verdict, parent_error_type FROM refinement_step "
                 "ORDER BY rationale_id")
        ).all()  # fmt: skip
    assert len(rows) == 6 and all(r.round == 1 and r.mode == "repair-data" and r.split == "train" for r in rows)
    assert all(r.parent_id == r.root_id and r.verdict == "correct" for r in rows)
    assert {r.parent_error_type for r in rows} == {"NameError", "wrong value", "SyntaxError"}


def test_the_lineage_view_returns_a_twice_refined_chain_in_order(db: Database) -> None:
    _problems(db)
    run_id = _fake_student_run(db)
    with db.transaction() as session:
        evaluation = session.execute(
            select(Evaluation).where(Evaluation.training_run_id == run_id, Evaluation.split == "train")
        ).scalar_one()
        root = (
            session.execute(
                select(Rationale)
                .where(Rationale.evaluation_id == evaluation.id, Rationale.body == FAILING["name"])
                .order_by(Rationale.id)
            )
            .scalars()
            .first()
        )
        assert root is not None
        first = Rationale(
            problem_id=root.problem_id, parent_id=root.id, evaluation_id=evaluation.id, sample_index=1,
            kind=RationaleKind.program, origin=RationaleOrigin.refinement, body=FAILING["syntax"],
            feedback="NameError: name 'totl' is not defined", refinement_round=1,
        )  # fmt: skip
        session.add(first)
        session.flush()
        second = Rationale(
            problem_id=root.problem_id, parent_id=first.id, evaluation_id=evaluation.id, sample_index=2,
            kind=RationaleKind.program, origin=RationaleOrigin.refinement,
            body=f"def solution():\n    return {session.get(Problem, root.problem_id).gold_answer}\n",  # type: ignore[union-attr]
            feedback="SyntaxError: invalid syntax", refinement_round=2,
        )  # fmt: skip
        session.add(second)
        session.flush()
        ids = (root.id, first.id, second.id)
    verify_programs(db, ids[1:], None)
    with db.read() as session:
        chain = session.execute(
            text("SELECT depth, ancestor_id, origin, feedback FROM rationale_lineage WHERE rationale_id = :r "
                 "ORDER BY depth"), {"r": ids[2]}
        ).all()  # fmt: skip
        steps = session.execute(
            text("SELECT rationale_id, round, mode, root_id, root_evaluation_id FROM refinement_step "
                 "WHERE root_id = :root ORDER BY round"), {"root": ids[0]}
        ).all()  # fmt: skip
        rounds = session.execute(
            text("SELECT round, attempts, failures, reachable FROM evaluation_round WHERE evaluation_id = :e "
                 "ORDER BY round"), {"e": evaluation.id}
        ).all()  # fmt: skip
    assert [(d, a) for d, a, _, _ in chain] == [(0, ids[2]), (1, ids[1]), (2, ids[0])]
    assert [o for _, _, o, _ in chain] == ["refinement", "refinement", "student"]
    assert chain[0].feedback == "SyntaxError: invalid syntax" and chain[2].feedback is None
    assert [(s.rationale_id, s.round, s.mode) for s in steps] == [
        (ids[1], 1, "eval-repair"),
        (ids[2], 2, "eval-repair"),
    ]
    assert all(s.root_evaluation_id == evaluation.id for s in steps)
    assert [r.round for r in rounds] == [0, 1, 2] and [r.attempts for r in rounds] == [6, 1, 1]

    # docs/sql.md's examples, on these rows.
    section = (ROOT / "docs/sql.md").read_text().split("## Refinement rounds")[1].split("\n## ")[0]
    per_round, rates, chain_query, before_after = re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)
    with db.read() as session:
        got_rounds = [tuple(r) for r in session.execute(text(per_round)) if r.evaluation_id == evaluation.id]
        got_rates = [tuple(r) for r in session.execute(text(rates))]
        got_chain = [
            tuple(r) for r in session.execute(text(chain_query.replace("root_id = 1", f"root_id = {ids[0]}")))
        ]
        assert session.execute(text(before_after)).all() == []
    assert got_rounds == [
        (evaluation.id, 0, 6, 6, 4, 2, 0, 0.0),
        (evaluation.id, 1, 1, 1, 1, 0, 0, 0.0),
        (evaluation.id, 2, 1, 0, 0, 0, 1, pytest.approx(1 / 6)),
    ]
    assert got_rates == [(1, "eval-repair", "NameError", 1, 0, 0.0), (2, "eval-repair", "SyntaxError", 1, 1, 1.0)]
    assert [(r[0], r[1], r[2], r[3], r[5]) for r in got_chain] == [
        (1, ids[1], ids[0], "NameError", "unparseable"),
        (2, ids[2], ids[1], "SyntaxError", "correct"),
    ]


def _evaluate_by_hand(db: Database, run_id: int, decoding: dict[str, object], accuracy: float) -> int:
    """A completed evaluation of the run on train with the failing programs as its outputs (verified)."""
    with db.transaction() as session:
        run = session.get(TrainingRun, run_id)
        assert run is not None
        task = session.execute(select(Task).where(Task.name == "procedural")).scalar_one()
        evaluation = Evaluation(
            model_id=run.output_model_id or run.base_model_id, training_run_id=run_id, task_id=task.id,
            split="train", decoding=decoding, status=TrainingStatus.completed, problems=6, accuracy=accuracy,
        )  # fmt: skip
        session.add(evaluation)
        session.flush()
        problems = session.execute(select(Problem.id).where(Problem.split == "train").order_by(Problem.id)).scalars()
        bodies = [*FAILING.values(), *FAILING.values()]
        rows = []
        for pid, body in zip(problems, bodies, strict=False):
            row = Rationale(
                problem_id=pid, evaluation_id=evaluation.id, model_id=evaluation.model_id, sample_index=0,
                kind=RationaleKind.program, origin=RationaleOrigin.student, body=body,
            )  # fmt: skip
            rows.append(row)
        session.add_all(rows)
        session.flush()
        ids, evaluation_id = [r.id for r in rows], evaluation.id
    verify_programs(db, ids, None)
    return evaluation_id


def _round_by_hand(db: Database, run_id: int, k: int) -> int:
    """What `curation refine` round k does, without training: collect the run's failures, build the
    repairs, freeze the round's snapshot (the run's snapshot plus the repairs) and add a completed
    run trained on it."""
    with db.read() as session:
        failures = collect_failures(session, run_id, "train")
    assert len(failures) == 6  # one per problem, whatever other decodings of the split exist
    build_repairs(db, failures)
    with db.transaction() as session:
        run = session.get(TrainingRun, run_id)
        assert run is not None
        source = session.get(Snapshot, run.snapshot_id)
        assert source is not None
        snapshot, _ = create_snapshot(
            session, f"refine-run-{run_id}-round-{k}",
            {"kinds": ["program"], "dedupe": "none", "where": _where(source, run_id, "train")},
        )  # fmt: skip
        after = TrainingRun(
            snapshot_id=snapshot.id, base_model_id=run.output_model_id or run.base_model_id,
            output_model_id=run.output_model_id, checkpoint_path="/nonexistent",
            config={"format": "repair", "refinement": {"round": k, "from_training_run": run_id}},
            status=TrainingStatus.completed,
        )  # fmt: skip
        session.add(after)
        session.flush()
        return after.id


def test_two_refine_rounds_each_compare_the_run_trained_in_that_round(db: Database) -> None:
    """Round 2's snapshot carries round 1's repairs forward; round 1's after-run is still only
    the run trained in round 1. Sample evaluations of the same split are neither collected from
    nor compared."""
    _problems(db)
    run0 = _fake_student_run(db)
    sampled = {"method": "sample", "samples": 4, "temperature": 0.8, "select": "exec-vote", "seed": 0}
    _evaluate_by_hand(db, run0, sampled, 0.9)
    run1 = _round_by_hand(db, run0, 1)
    greedy1 = _evaluate_by_hand(db, run1, {"method": "greedy", "format": "repair"}, 0.25)
    _evaluate_by_hand(db, run1, sampled, 0.75)
    run2 = _round_by_hand(db, run1, 2)
    greedy2 = _evaluate_by_hand(db, run2, {"method": "greedy", "format": "repair"}, 0.5)

    assert refinement_rounds(db, run0) == [(1, run0, run1), (2, run1, run2)]
    assert refinement_rounds(db, run1) == [(2, run1, run2)]
    with db.read() as session:
        greedy0 = session.execute(
            select(Evaluation.id).where(Evaluation.training_run_id == run0, Evaluation.split == "train")
            .order_by(Evaluation.id)
        ).scalars().first()  # fmt: skip
        rows = session.execute(
            text("SELECT round, before_run_id, after_run_id, before_evaluation_id, accuracy_before, "
                 "after_evaluation_id, accuracy_after FROM refinement_round_accuracy ORDER BY round")
        ).all()  # fmt: skip
        repairs = session.execute(
            text("SELECT training_run_id, COUNT(*), COUNT(DISTINCT problem_id) FROM refinement_step "
                 "WHERE mode = 'repair-data' GROUP BY training_run_id ORDER BY training_run_id")
        ).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [
        (1, run0, run1, greedy0, None, greedy1, 0.25),
        (2, run1, run2, greedy1, 0.25, greedy2, 0.5),
    ]
    assert [tuple(r) for r in repairs] == [(run0, 6, 6), (run1, 6, 6)]


def test_the_repair_prompt_shows_the_faulty_program_and_the_feedback() -> None:
    prompt = repair_prompt("How many?", None, FAILING["name"], "NameError:  name\n'totl'")
    assert prompt == (
        "How many?\n# Faulty program:\n" + FAILING["name"].rstrip("\n") + "\n# Feedback: NameError: name 'totl'\n"
        "# Find the wrong step, say why, and give the corrected program.\n# Corrected program:\n"
    )


@pytest.mark.slow
def test_a_full_refine_round_end_to_end(sqlite_db: Database, tiny_student: Path, tmp_path: Path) -> None:
    db = sqlite_db
    _problems(db)
    with db.transaction() as session:
        snapshot, _ = create_snapshot(
            session, "refs", {"kinds": ["program"], "origins": ["reference"], "splits": ["train"]}
        )
        ref = f"{snapshot.name}@{snapshot.version}"
    config = TrainConfig(format="pad", max_steps=2, batch_size=4, learning_rate=1e-3, save_steps=2,
                         validation_fraction=0.0)  # fmt: skip
    with db.transaction() as session:
        run_id = create_training_run(session, ref, str(tiny_student), config, output_root=tmp_path / "runs").id
    execute_training_run(db, run_id, progress=False)
    before = evaluate(db, EvalSpec(model=f"run:{run_id}", task="procedural", split="train", max_new_tokens=16))
    assert before.problems == 6

    [report] = refine(
        db,
        RefineSpec(training_run_id=run_id, train_steps=2, evaluate_split="test", max_new_tokens=16,
                   output_root=tmp_path / "runs"),
    )  # fmt: skip
    failed = before.problems - before.correct
    assert report.failures == failed > 0 and report.repairs == report.created == failed
    assert report.snapshot == f"refine-run-{run_id}-round-1@1" and report.trained_run_id is not None
    assert set(report.evaluations) == {"procedural/train", "procedural/test"}
    with db.read() as session:
        new_run = session.get(TrainingRun, report.trained_run_id)
        assert new_run is not None and new_run.status is TrainingStatus.completed
        assert new_run.config["format"] == "repair" and new_run.config["refinement"] == {
            "round": 1, "from_training_run": run_id}  # fmt: skip
        composition = {
            origin: members
            for origin, members in session.execute(
                text("SELECT origin, members FROM snapshot_composition WHERE ref = :ref"), {"ref": report.snapshot}
            )
        }
        steps = session.execute(text("SELECT round, mode, training_run_id, split, verdict FROM refinement_step")).all()
        accuracy = session.execute(
            text("SELECT before_run_id, after_run_id, split, accuracy_before, accuracy_after "
                 "FROM refinement_round_accuracy WHERE split = 'train'")
        ).all()  # fmt: skip
        lineage = session.execute(
            text("SELECT COUNT(*) FROM rationale_lineage l JOIN rationale r ON r.id = l.ancestor_id "
                 "WHERE l.depth = 1 AND r.origin = 'student'")
        ).scalar_one()  # fmt: skip
        parents_split = set(
            session.execute(
                text("SELECT p.split FROM rationale c JOIN rationale pa ON pa.id = c.parent_id "
                     "JOIN problem p ON p.id = pa.problem_id WHERE c.origin = 'refinement'")
            ).scalars()
        )  # fmt: skip
    assert composition == {"reference": 6, "refinement": failed}
    assert {(s.round, s.mode, s.training_run_id, s.split, s.verdict) for s in steps} == {
        (1, "repair-data", run_id, "train", "correct")
    }
    assert lineage == failed and parents_split == {"train"}
    assert [(a.before_run_id, a.after_run_id) for a in accuracy] == [(run_id, report.trained_run_id)]
    assert accuracy[0].accuracy_before == pytest.approx(before.accuracy)

    assert new_run.metrics is not None
    folder = Path(new_run.metrics["run_dir"]) / "data"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "repair" and manifest["rows"] == 6 + failed
    rows = [json.loads(line) for line in (folder / "train.jsonl").open()]
    repairs = [r for r in rows if r["origin"] == "refinement"]
    assert len(repairs) == failed and all(REPAIR_FAULTY in r["prompt"] and r["parent_rationale_id"] for r in repairs)
    with db.read() as session:
        export_snapshot(session, report.snapshot, "repair", tmp_path / "again")

    # The evaluation-time loop: repairs fire on visible failures only, round by round.
    looped = evaluate(
        db, EvalSpec(model=f"run:{report.trained_run_id}", task="procedural", split="test", max_new_tokens=16,
                     repair_rounds=2)
    )  # fmt: skip
    assert looped.rounds and looped.rounds[0].failures == looped.rounds[0].reachable + looped.rounds[0].unreachable
    with db.read() as session:
        repaired_parents = session.execute(
            text("SELECT pe.status, pl.verdict FROM rationale c JOIN rationale pa ON pa.id = c.parent_id "
                 "LEFT JOIN current_execution pe ON pe.rationale_id = pa.id "
                 "LEFT JOIN current_label pl ON pl.rationale_id = pa.id "
                 "WHERE c.evaluation_id = :e"), {"e": looped.evaluation_id}
        ).all()  # fmt: skip
        per_round = session.execute(
            text("SELECT round, attempts, reachable, accuracy FROM evaluation_round WHERE evaluation_id = :e "
                 "ORDER BY round"), {"e": looped.evaluation_id}
        ).all()  # fmt: skip
    assert len(repaired_parents) == sum(r.reachable for r in looped.rounds)
    with db.read() as session:  # each repair is a generation of the evaluation's run, with its tokens
        repair_generations = session.execute(
            text("SELECT g.sample_index, c.sample_index, g.completion_tokens, g.synthesis_run_id, e.synthesis_run_id "
                 "FROM rationale c JOIN generation g ON g.id = c.generation_id "
                 "JOIN evaluation e ON e.id = c.evaluation_id "
                 "WHERE c.evaluation_id = :e AND c.origin = 'refinement'"), {"e": looped.evaluation_id}
        ).all()  # fmt: skip
    assert repair_generations and len(repair_generations) == len(repaired_parents)
    assert all(g == c and tokens and run == own for g, c, tokens, run, own in repair_generations)
    assert all(verdict in ("error", "unparseable") for _, verdict in repaired_parents)  # never a wrong value
    assert per_round[0].attempts == 3 and per_round[-1].accuracy == pytest.approx(looped.accuracy)

    # The ablation of the student: its decodings, then the student before and after the round,
    # both evaluated greedily on the same split (the refine command's own test evaluation reused).
    with db.read() as session:
        stored = session.execute(select(func.count()).select_from(Evaluation)).scalar_one()
    spec = AblationSpec(
        model=f"run:{run_id}", task="procedural", split="test", ns=(1,), selections=("exec-vote",),
        scorer_sets=(("exec",),), max_new_tokens=16, max_steps=3,
    )  # fmt: skip
    assert refinement_rounds(db, run_id) == [(1, run_id, report.trained_run_id)]
    rows = run_ablation(db, spec)
    assert [(r.method, r.variant) for r in rows] == [
        ("greedy", "-"), ("best-of-N", "exec-vote"), ("step-beam", "exec"),
        ("refine round 1 (before)", f"run:{run_id}"), ("refine round 1 (after)", f"run:{report.trained_run_id}"),
    ]  # fmt: skip
    assert rows[3].evaluation_id == rows[0].evaluation_id  # the student before is its greedy row
    assert rows[4].accuracy == pytest.approx(report.evaluations["procedural/test"])
    assert rows[4].teacher_tokens == 0  # every repair was a verified program already stored
    with db.read() as session:  # three new decodings of the student; the run after was evaluated already
        assert session.execute(select(func.count()).select_from(Evaluation)).scalar_one() == stored + 3
