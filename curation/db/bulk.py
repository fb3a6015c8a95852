"""Idempotent bulk inserts at close to the driver's own speed.

The ORM's per-row parameter handling costs more than SQLite itself spends storing a row, so hot
paths (ingesting problems, storing generations) write through the driver:

- SQLite: one `executemany` of INSERT ... ON CONFLICT DO NOTHING;
- PostgreSQL: COPY into a temporary staging table, then INSERT ... SELECT ... ON CONFLICT DO
  NOTHING, which keeps the idempotency that COPY alone lacks.

Values are converted as the ORM would convert them (the engines' JSON serializer, the column
types' own bind processors for timestamps), so rows read back the same whichever path wrote them.
Both run inside the session's current transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import JSON, Table
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from curation.db.base import json_dumps, utc_now


def insert_ignoring_conflicts_bulk(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    conflict_columns: Sequence[str],
) -> int:
    """Insert `rows` (tuples in `columns` order) unless their conflict key exists; return how many were new.

    A `created_at` column missing from `columns` is filled with one timestamp for the batch.
    """
    return len(_insert(session, table, columns, rows, conflict_columns, want_keys=False))


def insert_ignoring_conflicts_returning_keys(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    conflict_columns: Sequence[str],
) -> set[tuple[Any, ...]]:
    """As above, returning the conflict keys this call inserted (rows another writer stored first,
    or repeated within `rows`, are not among them)."""
    return set(_insert(session, table, columns, rows, conflict_columns, want_keys=True))


def _insert(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    conflict_columns: Sequence[str],
    *,
    want_keys: bool,
) -> list[tuple[Any, ...]]:
    """The inserted rows' conflict keys (placeholders when `want_keys` is off: only their number counts)."""
    if not rows:
        return []
    targets = [table.c[name] for name in columns]
    stamp = "created_at" in table.c and "created_at" not in columns
    if stamp:
        targets.append(table.c.created_at)
    connection = session.connection()
    dialect = connection.dialect
    postgres = dialect.name == "postgresql"
    # Which values need converting: JSON always (to its text, which COPY also takes for jsonb);
    # on SQLite the other typed columns too (timestamps become strings). psycopg adapts the rest.
    converters: list[tuple[int, Callable[[Any], Any]]] = []
    for index, column in enumerate(targets):
        impl = column.type.dialect_impl(dialect)
        if isinstance(impl, JSON):
            converters.append((index, json_dumps))
        elif not postgres and (processor := impl.bind_processor(dialect)) is not None:
            converters.append((index, processor))
    if stamp:  # one timestamp for the batch, converted once
        now = utc_now()
        stamp_converter = dict(converters).get(len(targets) - 1)
        stamp_value = stamp_converter(now) if stamp_converter else now
        converters = [(i, c) for i, c in converters if i != len(targets) - 1]
    params: list[list[Any]] = []
    for row in rows:
        values = list(row)
        if stamp:
            values.append(stamp_value)
        for index, convert in converters:
            if values[index] is not None:
                values[index] = convert(values[index])
        params.append(values)
    column_list = ", ".join(f'"{c.name}"' for c in targets)
    conflict = ", ".join(f'"{name}"' for name in conflict_columns)
    if postgres:
        return _copy_then_insert(connection, table.name, column_list, conflict, params, want_keys)
    existing: set[tuple[Any, ...]] = set()
    if want_keys:
        # Exact on SQLite: the write transaction began IMMEDIATE, so nobody else writes until commit.
        positions = [list(columns).index(name) for name in conflict_columns]
        candidates = [tuple(row[i] for i in positions) for row in rows]
        existing = _existing_keys(connection, table.name, conflict_columns, candidates)
    placeholders = ", ".join("?" for _ in targets)
    result = connection.exec_driver_sql(
        f'INSERT INTO "{table.name}" ({column_list}) VALUES ({placeholders}) ON CONFLICT ({conflict}) DO NOTHING',
        [tuple(p) for p in params],
    )
    if not want_keys:
        return [()] * int(result.rowcount)
    inserted = []
    for key in candidates:
        if key not in existing:
            existing.add(key)  # a key repeated within the batch is inserted once
            inserted.append(key)
    return inserted


def _existing_keys(
    connection: Connection, table: str, columns: Sequence[str], keys: list[tuple[Any, ...]]
) -> set[tuple[Any, ...]]:
    found: set[tuple[Any, ...]] = set()
    names = ", ".join(f'"{c}"' for c in columns)
    row_placeholder = "(" + ", ".join("?" for _ in columns) + ")"
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        sql = f'SELECT {names} FROM "{table}" WHERE ({names}) IN (VALUES {", ".join([row_placeholder] * len(chunk))})'
        found.update(tuple(r) for r in connection.exec_driver_sql(sql, tuple(v for key in chunk for v in key)))
    return found


def _copy_then_insert(
    connection: Connection, table: str, column_list: str, conflict: str, params: list[list[Any]], want_keys: bool
) -> list[tuple[Any, ...]]:
    staging = f"_staging_{table}"
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        # Same column types as the target, no constraints or defaults; dropped at commit.
        cursor.execute(
            f'CREATE TEMP TABLE IF NOT EXISTS "{staging}" ON COMMIT DROP AS '
            f'SELECT {column_list} FROM "{table}" WITH NO DATA'
        )
        cursor.execute(f'TRUNCATE "{staging}"')
        with cursor.copy(f'COPY "{staging}" ({column_list}) FROM STDIN') as copy:
            for values in params:
                copy.write_row(values)
        returning = f" RETURNING {conflict}" if want_keys else ""
        cursor.execute(
            f'INSERT INTO "{table}" ({column_list}) SELECT {column_list} FROM "{staging}" '
            f"ON CONFLICT ({conflict}) DO NOTHING{returning}"
        )
        if want_keys:
            return [tuple(row) for row in cursor.fetchall()]
        return [()] * int(cursor.rowcount)
