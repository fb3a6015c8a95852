"""The system's own cost per generation, teacher time excluded: from the request to the labelled row.

    python bench/orchestration.py [--sizes 1000,10000,100000] [--modes embedded,celery] [--kinds cot,program]

The teacher is a zero-latency OpenAI-compatible responder (tests/support/stub_server.py) in a
process of its own: whatever time a generation takes is the system's (HTTP client, storing the
generation and its rationale, sending follow-ups, execution for programs, verification, the
label). Problems are procedural; D = 1; the stub answers CoT text ending "The answer is 42." or a
PaD program returning 42. Timed from sending the run's first task to the run completing.

- embedded: one process, SQLite, tasks run in-process (generation, execution and verification
  each on their own thread, as their queues would be).
- celery: PostgreSQL, Redis and one `curation worker` process for all three queues.

For programs it also runs the sandbox alone on the same programs, in the same run: the pipeline's
rate against the sandbox's own rate is what the orchestration costs on top of execution.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fresh_databases import fresh_postgres  # noqa: E402
from curation.db import migrations  # noqa: E402
from curation.db.session import Database  # noqa: E402
from curation.ingestion.service import ingest_procedural  # noqa: E402
from curation.models import TemplateStyle  # noqa: E402
from curation.templates import add_template  # noqa: E402
from tests.support.stub_server import PROGRAM_TEXT  # noqa: E402
from workers.driver import progress_of, run_embedded, wait_distributed  # noqa: E402
from workers.sandbox import Limits, Sandbox  # noqa: E402
from workers.synthesis import RunSpec, create_run, start_run  # noqa: E402
from workers.teachers.spec import TeacherSpec  # noqa: E402

COT_TEMPLATE = "Q: {{ question }}\nA:"


def start_stub(kind: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.stub_server", "--mode", kind, "--print-url"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def prepare(db: Database, size: int, kind: str, teacher_url: str) -> int:
    migrations.upgrade(db)
    with db.transaction() as session:
        ingest_procedural(session, count=size, seed=0)
        template = "pad-program"
        if kind == "cot":
            add_template(session, name="bench-cot", style=TemplateStyle.few_shot_cot, text=COT_TEMPLATE)
            template = "bench-cot"
        run = create_run(
            session,
            RunSpec(
                task="procedural", template=template, samples=1, batch_size=256, limits=Limits(wall_seconds=2.0),
                teacher=TeacherSpec("openai", "stub", {"base_url": teacher_url, "concurrency": 32}),
            ),
        )  # fmt: skip
        return run.id


def _cpu_seconds() -> float:
    """CPU time of this process, all its threads (not the sandbox's processes, nor the stub's)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def embedded(size: int, kind: str, teacher_url: str, directory: Path) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of this process) for the run."""
    path = directory / f"embedded-{kind}-{size}.db"
    db = Database(f"sqlite:///{path}")
    run_id = prepare(db, size, kind, teacher_url)
    gc.collect()
    start, cpu = time.perf_counter(), _cpu_seconds()
    final = run_embedded(db, run_id)
    elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    assert final.labelled == size, final
    db.dispose()
    path.unlink()
    return elapsed, cpu


def celery(size: int, kind: str, teacher_url: str, admin_url: str, redis_url: str, directory: Path) -> float:
    import redis
    from celery import Celery

    from curation.settings import Settings
    from workers.celery_app import celery_config
    from workers.dispatch import CeleryDispatcher
    from workers.tasks import ROUTES

    redis.Redis.from_url(redis_url).flushdb()
    url = fresh_postgres(admin_url, f"bench_orchestration_{kind}_{size}")
    db = Database(url)
    run_id = prepare(db, size, kind, teacher_url)
    environment = {**os.environ, "CURATION_DATABASE_URL": url, "CURATION_BROKER_URL": redis_url}
    log = (directory / f"worker-{kind}-{size}.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "curation", "worker", "--concurrency", "2", "--loglevel", "warning"],
        cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    app = Celery("bench")
    app.conf.update(celery_config(Settings(broker_url=redis_url, database_url=url)))
    dispatcher = CeleryDispatcher(app, ROUTES)
    try:
        time.sleep(3)  # the worker's start-up is not the system's cost per generation
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited: {(directory / f'worker-{kind}-{size}.log').read_text()[-2000:]}")
        start = time.perf_counter()
        start_run(db, dispatcher, run_id)

        def check(_progress: object) -> None:
            if worker.poll() is not None:
                raise RuntimeError("the worker died during the run")

        final = wait_distributed(db, dispatcher, run_id, poll_seconds=0.2, stall_seconds=60, on_progress=check)
        elapsed = time.perf_counter() - start
        assert final.labelled == size, (final, progress_of(db, run_id))
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        db.dispose()
    return elapsed


def sandbox_alone(size: int) -> float:
    programs = [PROGRAM_TEXT] * size
    with Sandbox(Limits(wall_seconds=2.0)) as sandbox:
        sandbox.start()
        start = time.perf_counter()
        sandbox.run_many(programs)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--modes", default="embedded,celery")
    parser.add_argument("--kinds", default="cot,program")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    directory = Path(tempfile.mkdtemp(prefix="bench-orchestration-"))
    print(f"{os.cpu_count()} CPUs; teacher: zero-latency stub in its own process; D = 1")
    try:
        for kind in args.kinds.split(","):
            stub, url = start_stub(kind)
            try:
                for mode in args.modes.split(","):
                    rates = []
                    for size in sizes:
                        # The sandbox's own rate is measured just before and just after the pipeline
                        # and averaged: this machine's speed drifts by 10-15% within minutes.
                        sample = min(size, 20_000)  # the sandbox's rate does not depend on how many
                        alone = []
                        if kind == "program" and mode == "embedded":
                            alone.append(sample / sandbox_alone(sample))
                        cpu = None
                        if mode == "embedded":
                            seconds, cpu = embedded(size, kind, url, directory)
                        else:
                            seconds = celery(size, kind, url, args.postgres_url, args.redis_url, directory)
                        rate = size / seconds
                        rates.append(rate)
                        line = (
                            f"{kind:<8} {mode:<9} {size:>8,} problems  {rate:>8,.0f} generations/s  "
                            f"{1e6 / rate:>7.0f} us each"
                        )
                        if cpu is not None:
                            line += f"  ({1e6 * cpu / size:,.0f} us CPU in this process)"
                        if alone:
                            alone.append(sample / sandbox_alone(sample))
                            mean = statistics.fmean(alone)
                            line += (
                                f"   sandbox alone {alone[0]:,.0f}/s before, {alone[1]:,.0f}/s after: "
                                f"pipeline at {rate / mean:.0%} of their mean"
                            )
                        print(line, flush=True)
                    if len(rates) > 1:
                        print(
                            f"{kind:<8} {mode:<9} cost per generation from {sizes[0]:,} to {sizes[-1]:,}: "
                            f"x{rates[0] / rates[-1]:.2f}",
                            flush=True,
                        )
            finally:
                stub.terminate()
                stub.wait()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
