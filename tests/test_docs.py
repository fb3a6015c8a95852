"""The example queries in docs/sql.md run, on both databases, against known data."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from curation.db.session import Database
from tests.conftest import ROOT
from tests.test_views import build_scenario

QUERIES = re.findall(r"```sql\n(.*?)```", (ROOT / "docs/sql.md").read_text(), flags=re.DOTALL)


def test_there_are_examples() -> None:
    assert len(QUERIES) >= 6


@pytest.mark.parametrize("query", QUERIES, ids=[f"example-{i}" for i in range(len(QUERIES))])
def test_example_query_runs(db: Database, query: str) -> None:
    with db.transaction() as session:
        build_scenario(session)
    with db.read() as session:
        session.execute(text(query)).all()
