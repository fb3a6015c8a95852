"""Snapshot export throughput and memory: JSONL and Parquet against a plain SELECT + json.dumps
loop writing the same rows, at two sizes, in one run.

    python bench/export.py [--sizes 100000 1000000] [--postgres-url URL]

For each size N, a fresh database gets N reference rationales of procedural problems (N/2
problems, each with its reference CoT and program, through `import_procedural_references`); their
labels are written with one INSERT ... SELECT (correct: the bench measures exports, not the
sandbox; tests/test_references.py verifies these references for real, all correct), and one
training snapshot takes them all (`create_snapshot`, timed). Then, each in a fresh process so that
its peak RSS (ru_maxrss) is its own:
- ours, JSONL: `export_snapshot(..., "trl-prompt-completion", file_format="jsonl")`;
- ours, Parquet: the same with file_format="parquet" (zstd, row groups of 10,000);
- plain: one SELECT of the same joined columns in member order, each row formatted by the same
  student_prompt functions into the same dict, `json.dumps`, one line written per row.
Rows/s is rows over the wall time of the export call (plain: of the loop). The ratio is ours over
plain; memory should be flat from the smaller size to the larger.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fresh_databases import fresh_postgres, fresh_sqlite  # noqa: E402
from curation import student_prompt  # noqa: E402
from curation.db.session import Database  # noqa: E402
from curation.ingestion.service import ingest_procedural  # noqa: E402
from curation.references import import_procedural_references  # noqa: E402
from curation.snapshots.create import create_snapshot  # noqa: E402
from curation.snapshots.export import export_snapshot  # noqa: E402

FORMAT = "trl-prompt-completion"
PLAIN_SQL = """
SELECT sm.position, sm.rationale_id, ra.generation_id, g.synthesis_run_id, sm.problem_id, t.name, p.split,
       ra.kind, ra.origin, ra.body, p.question, p.choices, p.gold_answer
FROM snapshot_member sm
JOIN rationale ra ON ra.id = sm.rationale_id
JOIN problem p ON p.id = sm.problem_id
JOIN task t ON t.id = p.task_id
LEFT JOIN generation g ON g.id = ra.generation_id
WHERE sm.snapshot_id = (SELECT id FROM snapshot WHERE name = 'bench' AND version = 1)
ORDER BY sm.position"""


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup(url: str, rationales: int) -> dict[str, Any]:
    db = Database(url)
    started = time.perf_counter()
    with db.transaction() as session:
        ingest_procedural(session, count=rationales // 2, seed=11)
    with db.transaction() as session:
        import_procedural_references(session)
    with db.transaction() as session:
        session.connection().exec_driver_sql(
            "INSERT INTO label (rationale_id, verifier, verifier_version, verdict, score, created_at) "
            "SELECT id, CASE WHEN kind = 'cot' THEN 'answer-match' ELSE 'program-execution' END, 'bench', "
            "'correct', 1.0, CURRENT_TIMESTAMP FROM rationale"
        )
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    with db.transaction() as session:
        snapshot, _ = create_snapshot(session, "bench", {"tasks": ["procedural"]})
        rows = snapshot.row_count
    created = time.perf_counter() - started
    db.dispose()
    return {"rows": rows, "load_seconds": loaded, "create_seconds": created}


def ours(url: str, out: str, file_format: str) -> dict[str, Any]:
    db = Database(url)
    started = time.perf_counter()
    with db.read() as session:
        manifest = export_snapshot(session, "bench@1", FORMAT, Path(out), file_format=file_format)
    seconds = time.perf_counter() - started
    return {"rows": manifest.rows, "seconds": seconds, "rss_mb": _peak_rss_mb()}


def plain(url: str, out: str) -> dict[str, Any]:
    db = Database(url)
    started = time.perf_counter()
    rows = 0
    with db.engine.connect() as connection, open(out, "w") as handle:
        result = connection.exec_driver_sql(PLAIN_SQL).yield_per(2_000)
        for position, rid, gid, run, pid, task, split, kind, origin, body, question, choices, gold in result:
            if isinstance(choices, str):
                choices = json.loads(choices)
            row = {
                "prompt": student_prompt.student_prompt(kind, question, choices),
                "completion": student_prompt.student_completion(kind, body, gold),
                "rationale_id": rid, "generation_id": gid, "synthesis_run_id": run, "problem_id": pid,
                "position": position, "task": task, "split": split, "kind": kind, "origin": origin, "answer": gold,
            }  # fmt: skip
            handle.write(json.dumps(row) + "\n")
            rows += 1
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "rss_mb": _peak_rss_mb()}


def _child(*args: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--postgres-url", help="also measure PostgreSQL (an admin URL; databases are recreated)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = {"setup": lambda: setup(rest[0], int(rest[1])), "ours": lambda: ours(*rest),
                  "plain": lambda: plain(*rest)}[kind]()  # fmt: skip
        print(json.dumps(result))
        return
    backends = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    with tempfile.TemporaryDirectory(prefix="bench-export-") as scratch:
        directory = Path(scratch)
        for backend in backends:
            print(f"\n{backend}: {FORMAT}")
            print(f"{'rationales':>11} {'create':>13} {'writer':>14} {'rows/s':>10} {'vs plain':>9} {'peak RSS':>10}")
            for size in args.sizes:
                name = f"bench_export_{size}"
                if backend == "sqlite":
                    url = f"sqlite:///{fresh_sqlite(directory, name)}"
                else:
                    url = fresh_postgres(args.postgres_url, name)
                made = _child("setup", url, str(size))
                create_rate = f"{made['rows'] / made['create_seconds']:,.0f}/s"
                runs = {
                    "plain json.dumps": _child("plain", url, str(directory / f"{name}-plain.jsonl")),
                    "ours JSONL": _child("ours", url, str(directory / f"{name}-jsonl"), "jsonl"),
                    "ours Parquet": _child("ours", url, str(directory / f"{name}-parquet"), "parquet"),
                }
                base = runs["plain json.dumps"]["rows"] / runs["plain json.dumps"]["seconds"]
                for label, run in runs.items():
                    rate = run["rows"] / run["seconds"]
                    ratio = "" if label.startswith("plain") else f"{rate / base:.2f}x"
                    print(
                        f"{made['rows']:>11,} {create_rate:>13} {label:>14} {rate:>10,.0f} {ratio:>9} "
                        f"{run['rss_mb']:>8,.0f}MB",
                        flush=True,
                    )
                for path in directory.glob(f"{name}*"):
                    if path.is_dir():
                        for file in path.iterdir():
                            file.unlink()
                        path.rmdir()
                    else:
                        path.unlink()


if __name__ == "__main__":
    main()
