"""Sandbox throughput on real teacher programs, against PaD's way, in one run.

    python bench/sandbox.py [--in-flight 8] [--baselines path,base,project] [--limit N]

Programs: the 1,318 Program-of-Thoughts GSM8K programs (real Codex outputs; a few loop until
killed, one needs longer than the limit). Each is run
  (a) by our sandbox, every limit on (2 s wall clock, CPU, 512 MB, no processes, no network,
      Landlock/seccomp, 16 KB output), and
  (b) PaD's way: the program written to a file and run as a fresh `python file.py` with
      subprocess.run(timeout=2), as PaD's harness does (`print(ans)` appended: these programs
      set `ans`),
with the same wall-clock limit and the same number of programs in flight, on the same cores.
PaD's way depends on which interpreter `python` is, so (b) is measured three ways:
  path    - the `python` first on PATH, which is what PaD's subprocess.run(['python', f]) runs;
  base    - the base interpreter with its own site-packages (the DESIGN's "python, about 40 ms");
  project - this project's interpreter (a lean virtualenv: the fastest fresh interpreter here).
It also reports how many of our results agree with the `executed` values the programs' authors
recorded, and why the others differ, and two figures the 2-second looping programs do not hide:
  latency   - the median time of a call holding one trivial program (`ans = 1`), over 200 calls,
              beside one fresh interpreter running it (PaD's way, this project's interpreter);
  finishing - programs/s on the programs that finish (those that did not time out above), as one
              batch.
To compare two versions of the sandbox, run this script with PYTHONPATH pointing at the other
checkout (its `workers` package is then the one measured), alternately with this one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from pathlib import Path

from workers.sandbox import Limits, Sandbox, SandboxResult, Status

DATA = (
    Path(__file__).resolve().parents[2]
    / "shared/data/teacher_outputs/program_of_thoughts/gsm8K_s0_e-1_11_17_10_20.jsonl"
)


def load(path: Path) -> list[dict[str, object]]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if "question" in r]  # the file opens with its few-shot prompt


def pad_way(python: str, programs: list[str], in_flight: int, wall_seconds: float) -> tuple[float, list[str | None]]:
    directory = Path(tempfile.mkdtemp(prefix="pad-way-"))
    values: list[str | None] = [None] * len(programs)

    def run(index: int) -> None:
        path = directory / f"program_{index}.py"
        path.write_text(programs[index] + "\nprint(ans)\n")
        try:
            done = subprocess.run([python, str(path)], capture_output=True, text=True, timeout=wall_seconds)
        except subprocess.TimeoutExpired:
            return
        lines = done.stdout.strip().splitlines()
        values[index] = lines[-1] if done.returncode == 0 and lines else None

    start = time.perf_counter()
    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(run, range(len(programs))))
    elapsed = time.perf_counter() - start
    shutil.rmtree(directory, ignore_errors=True)
    return elapsed, values


def one_program_latency(sandbox: Sandbox, calls: int) -> float:
    """Median seconds of a call holding one trivial program."""
    for _ in range(10):  # warm: the server and its first children
        sandbox.run("ans = 1")
    timings = []
    for _ in range(calls):
        start = time.perf_counter()
        sandbox.run("ans = 1")
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def fresh_interpreter_latency(python: str, calls: int) -> float:
    timings = []
    for _ in range(calls):
        start = time.perf_counter()
        subprocess.run([python, "-c", "ans = 1\nprint(ans)"], capture_output=True, check=True)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def as_number(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def agrees(ours: SandboxResult, recorded: object) -> tuple[bool, str]:
    mine = as_number(ours.value) if ours.status is Status.ok else None
    theirs = as_number(recorded)
    if mine is None and theirs is None:
        return True, ""
    if (
        mine is not None
        and theirs is not None
        and abs(mine - theirs) <= max(Decimal("1e-9"), abs(theirs) * Decimal("1e-9"))
    ):
        return True, ""
    if theirs is not None and ours.status is Status.timeout:
        return False, "ran past our 2 s limit (the authors' harness allowed longer)"
    if theirs is None and mine is not None:
        return False, "we got a value where the authors recorded none"
    return False, f"different values ({ours.status.value})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--in-flight", type=int, default=4 * (os.cpu_count() or 1))
    parser.add_argument("--wall-seconds", type=float, default=2.0)
    parser.add_argument("--baselines", default="path,base,project", help="comma-separated: path, base, project")
    parser.add_argument("--limit", type=int, default=0, help="only the first N programs")
    parser.add_argument("--latency-calls", type=int, default=200, help="one-program calls timed for the latency")
    args = parser.parse_args()

    records = load(args.data)[: args.limit or None]
    programs = [str(r["generated"][0]) for r in records]  # type: ignore[index]
    print(
        f"{len(programs):,} programs from {args.data.name}; {args.in_flight} in flight; "
        f"{args.wall_seconds:g} s wall-clock limit; {os.cpu_count()} CPUs"
    )

    limits = Limits(wall_seconds=args.wall_seconds)
    with Sandbox(limits, in_flight=args.in_flight) as sandbox:
        start = time.perf_counter()
        sandbox.start()
        print(
            f"sandbox server start-up: {(time.perf_counter() - start) * 1000:.0f} ms "
            f"(Landlock ABI {sandbox.info['landlock_abi']}; once per worker, not in the timing)"
        )
        start = time.perf_counter()
        results = sandbox.run_many(programs)
        ours_seconds = time.perf_counter() - start
        finishing = [p for p, r in zip(programs, results, strict=True) if r.status is not Status.timeout]
        start = time.perf_counter()
        sandbox.run_many(finishing)
        finishing_seconds = time.perf_counter() - start
        latency = one_program_latency(sandbox, args.latency_calls)
    ours_rate = len(programs) / ours_seconds
    statuses: dict[str, int] = {}
    for result in results:
        statuses[result.status.value] = statuses.get(result.status.value, 0) + 1
    print(f"\n{'ours (sandbox)':<44} {ours_rate:8.0f} programs/s   {ours_seconds:6.2f} s   {statuses}")
    print(
        f"{'ours, the programs that finish':<44} {len(finishing) / finishing_seconds:8.0f} programs/s   "
        f"{finishing_seconds:6.2f} s   ({len(finishing)} programs)"
    )
    fresh = fresh_interpreter_latency(sys.executable, max(5, args.latency_calls // 10))
    print(
        f"{'ours, one-program call (median latency)':<44} {latency * 1000:8.1f} ms           "
        f"a fresh interpreter: {fresh * 1000:.1f} ms, ours is {fresh / latency:4.1f}x"
    )

    interpreters = {
        "path": shutil.which("python") or "python",
        "base": getattr(sys, "_base_executable", sys.executable),
        "project": sys.executable,
    }
    for name in args.baselines.split(","):
        python = interpreters[name.strip()]
        seconds, _values = pad_way(python, programs, args.in_flight, args.wall_seconds)
        rate = len(programs) / seconds
        label = f"PaD's way, {name}: {python}"
        print(f"{label:<44.44} {rate:8.1f} programs/s   {seconds:6.2f} s   ours is {ours_rate / rate:5.1f}x")

    disagreements = []
    for index, (record, result) in enumerate(zip(records, results, strict=True)):
        same, why = agrees(result, record.get("executed"))
        if not same:
            disagreements.append((index, result, record.get("executed"), why))
    agreeing = len(programs) - len(disagreements)
    print(
        f"\nagreement with the authors' recorded results: {agreeing}/{len(programs)} ({agreeing / len(programs):.2%})"
    )
    for index, result, recorded, why in disagreements:
        print(f"  #{index}: ours {result.status.value} {result.value!r}, recorded {recorded!r}: {why}")


if __name__ == "__main__":
    main()
