"""Ingest throughput: rows/s into SQLite and PostgreSQL, against raw DBAPI executemany, same run.

    python bench/ingest.py [--rows 100000] [--repeat 3] [--postgres-url URL]

Ours is the full ingest path (`store_problems` over `build_row`): gold normalization, question
fingerprint, idempotent insert with conflict checks, in one transaction. The baseline is a raw
DBAPI executemany (sqlite3 / psycopg) of the same final rows, already converted to driver values,
into an identical fresh schema: the fastest a plain INSERT can go, with nothing checked. Both
commit once at the end; both databases use the same settings (SQLite: WAL, synchronous=NORMAL).
The procedural generator's own rate is printed too, but it is outside both timings.
"""

from __future__ import annotations

import argparse
import gc
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bench.fresh_databases import fresh_postgres, fresh_sqlite
from curation.db.session import Database
from curation.errors import SourceLocation
from curation.ingestion.formats import ParsedProblem
from curation.ingestion.rows import PROBLEM_COLUMNS, build_row
from curation.ingestion.service import IngestReport, store_problems
from curation.ingestion.tasks import KNOWN_TASKS
from curation.models import AnswerType
from curation.procedural import procedural_problems

INSERT_COLUMNS = (*PROBLEM_COLUMNS, "created_at")


def ours(database: Database, problems: list[ParsedProblem]) -> float:
    start = time.perf_counter()
    with database.transaction() as session:
        rows = (
            build_row(
                p,
                answer_type=AnswerType.number,
                split="train",
                source_ref=p.source_id or "",
                location=SourceLocation("bench", record=i),
            )
            for i, p in enumerate(problems)
        )
        report = store_problems(session, KNOWN_TASKS["procedural"], rows, IngestReport("procedural"))
    elapsed = time.perf_counter() - start
    assert report.inserted == len(problems), report
    return elapsed


def driver_rows(problems: list[ParsedProblem], task_id: int, *, sqlite_timestamps: bool) -> list[tuple[Any, ...]]:
    """The same rows as ours stores, as the driver takes them (built outside the timing)."""
    now: Any = datetime.now(UTC)
    if sqlite_timestamps:
        now = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    out = []
    for i, p in enumerate(problems):
        row = build_row(
            p,
            answer_type=AnswerType.number,
            split="train",
            source_ref=p.source_id or "",
            location=SourceLocation("bench", record=i),
        )
        values = list(row.values(task_id))
        values[6] = json.dumps(values[6]) if values[6] is not None else None
        values[9] = json.dumps(values[9]) if values[9] is not None else None
        out.append((*values, now))
    return out


def raw_sqlite(path: Path, problems: list[ParsedProblem]) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("INSERT INTO task (name, answer_type, created_at) VALUES ('procedural', 'number', '')")
    connection.execute("INSERT INTO split (task_id, name, purpose, created_at) VALUES (1, 'train', 'train', '')")
    rows = driver_rows(problems, 1, sqlite_timestamps=True)
    placeholders = ", ".join("?" for _ in INSERT_COLUMNS)
    start = time.perf_counter()
    connection.execute("BEGIN")
    connection.executemany(f"INSERT INTO problem ({', '.join(INSERT_COLUMNS)}) VALUES ({placeholders})", rows)
    connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def raw_postgres(url: str, problems: list[ParsedProblem]) -> float:
    with psycopg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    ) as connection:
        task_id = connection.execute(
            "INSERT INTO task (name, answer_type, created_at) VALUES ('procedural', 'number', now()) RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        connection.execute(
            "INSERT INTO split (task_id, name, purpose, created_at) VALUES (%s, 'train', 'train', now())",
            (task_id,),
        )
        connection.commit()
        rows = driver_rows(problems, task_id, sqlite_timestamps=False)
        placeholders = ", ".join("%s" for _ in INSERT_COLUMNS)
        start = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO problem ({', '.join(INSERT_COLUMNS)}) VALUES ({placeholders})", rows)
        connection.commit()
        return time.perf_counter() - start


def measure(label: str, repeat: int, run_ours: Callable[[], float], run_raw: Callable[[], float], rows: int) -> None:
    ours_times, raw_times = [], []
    for _ in range(repeat):  # alternate, so drift on the machine hits both alike
        raw_times.append(run_raw())
        ours_times.append(run_ours())
    ours_rate = rows / statistics.median(ours_times)
    raw_rate = rows / statistics.median(raw_times)
    print(
        f"{label:<11} ours {ours_rate:>10,.0f} rows/s   raw executemany {raw_rate:>10,.0f} rows/s   "
        f"ratio {ours_rate / raw_rate:.2f}   (median of {repeat})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()

    start = time.perf_counter()
    problems = list(procedural_problems(args.rows, seed=0))
    print(
        f"procedural generator: {args.rows / (time.perf_counter() - start):,.0f} problems/s (not in the timings below)"
    )
    # The pre-generated input stays alive through every timing, which a streamed file ingest never
    # does; left to the collector, each full collection would rescan all of it. Freezing moves it
    # out of the collector's sight; the ingest's own allocations are still collected as usual.
    gc.collect()
    gc.freeze()

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)

        def run_ours_sqlite() -> float:
            database = Database(f"sqlite:///{fresh_sqlite(directory, 'ours')}")
            try:
                return ours(database, problems)
            finally:
                database.dispose()

        measure(
            "SQLite",
            args.repeat,
            run_ours_sqlite,
            lambda: raw_sqlite(Path(fresh_sqlite(directory, "raw")), problems),
            args.rows,
        )

    if not args.skip_postgres:

        def run_ours_postgres() -> float:
            database = Database(fresh_postgres(args.postgres_url, "bench_ingest_ours"))
            try:
                return ours(database, problems)
            finally:
                database.dispose()

        measure(
            "PostgreSQL",
            args.repeat,
            run_ours_postgres,
            lambda: raw_postgres(fresh_postgres(args.postgres_url, "bench_ingest_raw"), problems),
            args.rows,
        )


if __name__ == "__main__":
    main()
