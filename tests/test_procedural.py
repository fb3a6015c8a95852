from __future__ import annotations

import pytest

from curation.db.session import Database
from curation.ingestion.service import ingest_procedural
from curation.procedural import procedural_problem, procedural_problems


def test_problem_i_depends_only_on_seed_and_index() -> None:
    assert procedural_problem(3, 17) == procedural_problem(3, 17)
    assert procedural_problem(3, 17) != procedural_problem(4, 17)
    batch = list(procedural_problems(10, seed=3, offset=10))
    assert batch[7] == procedural_problem(3, 17)


def test_reference_programs_return_the_gold_answer() -> None:
    for problem in procedural_problems(2_000, seed=11):
        assert isinstance(problem.gold, int) and problem.gold >= 0
        assert problem.meta is not None
        namespace: dict[str, object] = {}
        exec(problem.meta["reference_program"], namespace)  # trusted: we wrote these programs
        assert namespace["solution"]() == problem.gold  # type: ignore[operator]
        assert problem.reference_rationale is not None
        assert problem.reference_rationale.endswith(f"The answer is {problem.gold}.")


def test_problems_are_multi_step_and_varied() -> None:
    problems = list(procedural_problems(1_000, seed=0))
    assert len({p.question for p in problems}) == 1_000
    assert min(p.meta["steps"] for p in problems if p.meta) >= 3


@pytest.mark.slow
def test_ingest_and_extend(db: Database) -> None:
    with db.transaction() as session:
        first = ingest_procedural(session, count=3_000, seed=5)
    with db.transaction() as session:
        again = ingest_procedural(session, count=4_000, seed=5)  # the first 3,000 are the same problems
    assert (first.inserted, again.inserted, again.unchanged) == (3_000, 1_000, 3_000)
