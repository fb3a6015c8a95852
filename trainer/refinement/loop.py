"""The evaluation-time repair loop: generate, execute, repair, for up to N rounds.

Round k takes the evaluation's attempts of round k-1 (round 0: the student's outputs) whose
execution failed in a way the interpreter sees without the gold answer (feedback.reachable: an
error, a timeout, a syntax error, no value of the answer type), asks the same student for a
repair with the repair prompt (student_prompt.repair_prompt) and the feedback, stores each
repair as a `refinement` rationale of the evaluation (sample_index = round = k, parent = the
attempt), and verifies it. Given the evaluation's synthesis run, each repair is also a generation
of it (sample_index = k: raw output, tokens, latency) that the rationale links to. A wrong value
that ran cleanly is a failure no round can reach: it is counted, never repaired (the gold answer
is read only by the verifier, after the fact).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy import text

from curation.db.bulk import insert_ignoring_conflicts_bulk
from curation.db.session import Database
from curation.models import AnswerType, Rationale, RationaleKind, RationaleOrigin
from curation.repositories import runs as run_repo
from curation.student_prompt import repair_prompt
from trainer.refinement.feedback import execution_feedback, reachable


@dataclass(frozen=True)
class Completed:
    """What the student wrote for one repair prompt, and what it cost."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None


@dataclass(frozen=True)
class RoundFigures:
    round: int
    failures: int  # attempts of the round before that were not correct
    reachable: int  # of those, failures the interpreter sees (repaired this round)
    unreachable: int  # wrong values without an error: no repair can fire
    repaired: int  # repairs of this round that are correct


_ATTEMPTS = text(
    """
SELECT ra.id, ra.problem_id, ra.body, p.question, p.choices, t.answer_type, ce.status, ce.value,
       ce.error_type, ce.error_message, cl.verdict
FROM rationale ra
JOIN problem p ON p.id = ra.problem_id
JOIN task t ON t.id = p.task_id
LEFT JOIN current_execution ce ON ce.rationale_id = ra.id
LEFT JOIN current_label cl ON cl.rationale_id = ra.id
WHERE ra.evaluation_id = :evaluation_id AND ra.sample_index = :round
ORDER BY ra.problem_id"""
)

_CORRECT = text(
    """
SELECT COUNT(*) FROM rationale ra JOIN current_label cl ON cl.rationale_id = ra.id
WHERE ra.evaluation_id = :evaluation_id AND ra.sample_index = :round AND cl.verdict = 'correct'"""
)


def repair_rounds(
    db: Database,
    evaluation_id: int,
    model_id: int,
    rounds: int,
    generate: Callable[[Sequence[str]], list[Completed]],
    verify: Callable[[], None],
    body_of: Callable[[str], str],
    run_id: int | None = None,
) -> list[RoundFigures]:
    """Run rounds 1..`rounds` (a round already stored is not generated again); per-round figures."""
    figures: list[RoundFigures] = []
    for k in range(1, rounds + 1):
        with db.read() as session:
            attempts = session.execute(_ATTEMPTS, {"evaluation_id": evaluation_id, "round": k - 1}).all()
            done = set(
                session.execute(
                    text("SELECT parent_id FROM rationale WHERE evaluation_id = :e AND sample_index = :k"),
                    {"e": evaluation_id, "k": k},
                ).scalars()
            )
        failed = [a for a in attempts if a.verdict != "correct"]
        todo: list[tuple[int, int, str, str]] = []  # parent, problem, prompt, feedback
        seen = unseen = 0
        for a in failed:
            choices = orjson.loads(a.choices) if isinstance(a.choices, str) else a.choices
            answer_type = AnswerType(a.answer_type)
            if not reachable(a.status, a.value, answer_type, choices):
                unseen += 1
                continue
            seen += 1
            if a.id in done:
                continue
            note = execution_feedback(a.status, a.value, a.error_type, a.error_message, answer_type, choices=choices)
            todo.append((a.id, a.problem_id, repair_prompt(a.question, choices, a.body, note), note))
        if todo:
            outputs = generate([prompt for _, _, prompt, _ in todo])
            with db.transaction() as session:
                generation_of: dict[int, int | None] = {pid: None for _, pid, _, _ in todo}
                if run_id is not None:
                    run_repo.insert_generations(
                        session,
                        [
                            {"synthesis_run_id": run_id, "problem_id": pid, "sample_index": k, "status": "ok",
                             "output": out.text, "finish_reason": out.finish_reason,
                             "prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens,
                             "latency_ms": out.latency_ms, "attempts": 1, "meta": {"repair_of": parent}}
                            for (parent, pid, _, _), out in zip(todo, outputs, strict=True)
                        ],
                    )  # fmt: skip
                    ids = run_repo.generation_ids(session, run_id, [(pid, k) for _, pid, _, _ in todo])
                    generation_of = {pid: gid for (pid, _), (gid, _) in ids.items()}
                rows = [
                    (pid, evaluation_id, model_id, k, RationaleKind.program.value, RationaleOrigin.refinement.value,
                     body_of(out.text), parent, note, k, generation_of[pid])
                    for (parent, pid, _, note), out in zip(todo, outputs, strict=True)
                ]  # fmt: skip
                insert_ignoring_conflicts_bulk(
                    session,
                    Rationale.__table__,  # type: ignore[arg-type]
                    ("problem_id", "evaluation_id", "model_id", "sample_index", "kind", "origin", "body",
                     "parent_id", "feedback", "refinement_round", "generation_id"),
                    rows,
                    ["evaluation_id", "problem_id", "sample_index"],
                )  # fmt: skip
            verify()
        with db.read() as session:
            correct = int(session.execute(_CORRECT, {"evaluation_id": evaluation_id, "round": k}).scalar_one())
        figures.append(RoundFigures(k, len(failed), seen, unseen, correct))
        if seen == 0:
            break
    return figures
