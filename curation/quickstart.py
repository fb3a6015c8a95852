"""The main job in embedded mode: everything on one SQLite file, no servers, no network."""

from __future__ import annotations

from collections.abc import Callable

from curation.db import migrations
from curation.db.session import Database
from curation.ingestion.service import ingest_procedural
from curation.stats import collect_stats


def run_quickstart(db: Database, *, problems: int = 200, seed: int = 0, echo: Callable[[str], object] = print) -> str:
    """Bring the schema to head and create procedural train and test problems (idempotent)."""
    migrations.upgrade(db)
    echo(f"schema at revision {migrations.current_revision(db)}")
    with db.transaction() as session:
        train = ingest_procedural(session, count=problems, seed=seed, split="train")
        # A different seed for test keeps the two sets apart; the content-hash check guards the rest.
        test = ingest_procedural(session, count=max(problems // 4, 1), seed=seed + 1, split="test")
    echo(f"procedural problems: train +{train.inserted} (of {train.read}), test +{test.inserted} (of {test.read})")
    with db.read() as session:
        stats = collect_stats(session)
    return f"{stats.total_problems:,} problems in {len(stats.problems)} splits; see `curation stats`"
