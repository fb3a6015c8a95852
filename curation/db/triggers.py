"""Database triggers that make sealed snapshots immutable, as frozen, versioned definitions.

A snapshot is written unsealed, its members added, then sealed with its manifest in the same
transaction. From then on the database refuses, on SQLite and PostgreSQL alike:
- any UPDATE or DELETE of the sealed `snapshot` row (name, version, kind, spec, hash, size,
  manifest and the seal itself);
- any INSERT, UPDATE or DELETE of its `snapshot_member` rows;
- an UPDATE of the text a member exports: `rationale.body` / `kind`, `problem.question` /
  `gold_answer` / `choices` of a rationale or problem in a sealed snapshot.
The error is an integrity error (SQLite's RAISE(ABORT), PostgreSQL's SQLSTATE 23000).
PostgreSQL's TRUNCATE bypasses row triggers: it is an administrator's tool, not guarded.

Like the views (views.py), a definition is never edited once released: migration 0007 creates
`V1`. SQLite drops a table's triggers with the table, so a later migration that rebuilds one of
these tables in batch mode must drop and create them around the rebuild (`drop_guards`,
`create_guards`), as migrations do with the views; tests/test_snapshots.py checks they exist at
the head revision.
"""

from __future__ import annotations

from typing import Any

MESSAGE = "sealed snapshot: its rows, members and the text they export never change"

# SQLite: (trigger name, timing, event and condition); each raises MESSAGE.
_SQLITE_V1: list[tuple[str, str]] = [
    (
        "snapshot_sealed_update",
        "BEFORE UPDATE ON snapshot FOR EACH ROW WHEN OLD.sealed",
    ),
    (
        "snapshot_sealed_delete",
        "BEFORE DELETE ON snapshot FOR EACH ROW WHEN OLD.sealed",
    ),
    (
        "snapshot_member_sealed_insert",
        "BEFORE INSERT ON snapshot_member FOR EACH ROW WHEN (SELECT sealed FROM snapshot WHERE id = NEW.snapshot_id)",
    ),
    (
        "snapshot_member_sealed_update",
        "BEFORE UPDATE ON snapshot_member FOR EACH ROW "
        "WHEN (SELECT sealed FROM snapshot WHERE id = OLD.snapshot_id) "
        "OR (SELECT sealed FROM snapshot WHERE id = NEW.snapshot_id)",
    ),
    (
        "snapshot_member_sealed_delete",
        "BEFORE DELETE ON snapshot_member FOR EACH ROW WHEN (SELECT sealed FROM snapshot WHERE id = OLD.snapshot_id)",
    ),
    (
        "rationale_in_sealed_snapshot",
        "BEFORE UPDATE OF body, kind ON rationale FOR EACH ROW "
        "WHEN (NEW.body IS NOT OLD.body OR NEW.kind IS NOT OLD.kind) AND EXISTS ("
        "SELECT 1 FROM snapshot_member sm JOIN snapshot s ON s.id = sm.snapshot_id "
        "WHERE sm.rationale_id = OLD.id AND s.sealed)",
    ),
    (
        "problem_in_sealed_snapshot",
        "BEFORE UPDATE OF question, gold_answer, choices ON problem FOR EACH ROW "
        "WHEN (NEW.question IS NOT OLD.question OR NEW.gold_answer IS NOT OLD.gold_answer "
        "OR NEW.choices IS NOT OLD.choices) AND EXISTS ("
        "SELECT 1 FROM snapshot_member sm JOIN snapshot s ON s.id = sm.snapshot_id "
        "WHERE sm.problem_id = OLD.id AND s.sealed)",
    ),
]

# PostgreSQL: one guard function per table, raising SQLSTATE 23000.
_PG_FUNCTIONS_V1: list[tuple[str, str]] = [
    (
        "snapshot_guard",
        "IF OLD.sealed THEN RAISE EXCEPTION '%', '" + MESSAGE + "' USING ERRCODE = '23000', "
        "DETAIL = format('snapshot %s@%s', OLD.name, OLD.version); END IF; "
        "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW;",
    ),
    (
        "snapshot_member_guard",
        "IF (TG_OP <> 'INSERT' AND EXISTS (SELECT 1 FROM snapshot WHERE id = OLD.snapshot_id AND sealed)) "
        "OR (TG_OP <> 'DELETE' AND EXISTS (SELECT 1 FROM snapshot WHERE id = NEW.snapshot_id AND sealed)) THEN "
        "RAISE EXCEPTION '%', '" + MESSAGE + "' USING ERRCODE = '23000'; END IF; "
        "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW;",
    ),
    (
        "rationale_snapshot_guard",
        "IF (NEW.body IS DISTINCT FROM OLD.body OR NEW.kind IS DISTINCT FROM OLD.kind) AND EXISTS ("
        "SELECT 1 FROM snapshot_member sm JOIN snapshot s ON s.id = sm.snapshot_id "
        "WHERE sm.rationale_id = OLD.id AND s.sealed) THEN "
        "RAISE EXCEPTION '%', '" + MESSAGE + "' USING ERRCODE = '23000', "
        "DETAIL = format('rationale %s', OLD.id); END IF; RETURN NEW;",
    ),
    (
        "problem_snapshot_guard",
        "IF (NEW.question IS DISTINCT FROM OLD.question OR NEW.gold_answer IS DISTINCT FROM OLD.gold_answer "
        "OR NEW.choices::text IS DISTINCT FROM OLD.choices::text) AND EXISTS ("
        "SELECT 1 FROM snapshot_member sm JOIN snapshot s ON s.id = sm.snapshot_id "
        "WHERE sm.problem_id = OLD.id AND s.sealed) THEN "
        "RAISE EXCEPTION '%', '" + MESSAGE + "' USING ERRCODE = '23000', "
        "DETAIL = format('problem %s', OLD.id); END IF; RETURN NEW;",
    ),
]

_PG_TRIGGERS_V1: list[tuple[str, str, str]] = [
    ("snapshot_sealed", "BEFORE UPDATE OR DELETE ON snapshot", "snapshot_guard"),
    ("snapshot_member_sealed", "BEFORE INSERT OR UPDATE OR DELETE ON snapshot_member", "snapshot_member_guard"),
    ("rationale_in_sealed_snapshot", "BEFORE UPDATE OF body, kind ON rationale", "rationale_snapshot_guard"),
    (
        "problem_in_sealed_snapshot",
        "BEFORE UPDATE OF question, gold_answer, choices ON problem",
        "problem_snapshot_guard",
    ),
]

SQLITE_TRIGGER_NAMES = [name for name, _ in _SQLITE_V1]
POSTGRES_TRIGGER_NAMES = [name for name, _, _ in _PG_TRIGGERS_V1]


def create_guards(op: Any) -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, body in _PG_FUNCTIONS_V1:
            op.execute(
                f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} END $$"
            )
        for name, event, function in _PG_TRIGGERS_V1:
            op.execute(f"CREATE TRIGGER {name} {event} FOR EACH ROW EXECUTE FUNCTION {function}()")
        return
    for name, head in _SQLITE_V1:
        op.execute(f"CREATE TRIGGER {name} {head} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END")


def drop_guards(op: Any) -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, event, _ in _PG_TRIGGERS_V1:
            table = event.rsplit(" ON ", 1)[1]
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for name, _ in _PG_FUNCTIONS_V1:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
        return
    for name, _ in _SQLITE_V1:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
