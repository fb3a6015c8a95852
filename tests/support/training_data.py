"""A small training snapshot as the trainer's tests need one: procedural problems, their reference
rationales verified in the sandbox, frozen as snapshot `refs`."""

from __future__ import annotations

from curation.db.session import Database
from curation.ingestion.service import ingest_procedural
from curation.references import import_procedural_references
from curation.snapshots.create import create_snapshot
from workers.sandbox import Sandbox
from workers.verification import verify


def reference_snapshot(db: Database, *, train: int = 20, test: int = 6, kind: str = "cot") -> str:
    """NAME@N of a snapshot of the reference rationales (`kind`: cot or program) of `train`
    procedural training problems; `test` more problems sit in a test split, outside it."""
    with db.transaction() as session:
        ingest_procedural(session, count=train, seed=0, split="train")
        if test:
            ingest_procedural(session, count=test, seed=1, split="test")
        run_id = import_procedural_references(session).run_id
    with Sandbox() as sandbox:
        verify(db, sandbox, run_id=run_id)
    with db.transaction() as session:
        snapshot, _ = create_snapshot(
            session, "refs", {"kinds": [kind], "origins": ["reference"], "splits": ["train"]}
        )
        return f"{snapshot.name}@{snapshot.version}"
