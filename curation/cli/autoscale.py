"""`curation autoscale`: how many workers each queue needs; optionally run them here, or write KEDA manifests."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from curation.cli.context import console, err_console
from curation.errors import CurationError
from curation.settings import get_settings
from workers.queues import Queue

if TYPE_CHECKING:  # imported when the command runs: redis and PyYAML are not needed by other commands
    from workers.autoscale.loop import Autoscaler, Step
    from workers.autoscale.policy import ScalingPolicy
    from workers.autoscale.pool import LocalWorkerPool


def _parse_rates(values: Sequence[str]) -> dict[str, float]:
    rates = {}
    for value in values:
        queue, _, rate = value.partition("=")
        if queue not in Queue.__members__:
            raise CurationError(f"--default-rate {value!r}: unknown queue {queue!r} (one of {', '.join(Queue)})")
        try:
            rates[queue] = float(rate)
        except ValueError:
            raise CurationError(f"--default-rate {value!r}: expected QUEUE=TASKS_PER_SECOND") from None
        if rates[queue] <= 0:
            raise CurationError(f"--default-rate {value!r}: the rate must be positive")
    return rates


def _print_step(step: Step, workers_column: str) -> None:
    table = Table("queue", "waiting", "unacked", "done/s", "per worker/s", "arriving/s", workers_column, "desired")
    table.add_column("reason", overflow="fold")
    for decision in step.decisions:
        seen = decision.observation
        per_worker = f"{decision.worker_rate:.3g}" + ("" if decision.rate_source == "measured" else "*")
        table.add_row(
            decision.queue,
            f"{seen.waiting:,}",
            f"{seen.unacked:,}",
            f"{seen.completion_rate:.3g}",
            per_worker,
            f"{decision.arrival_rate:.3g}",
            str(seen.workers),
            f"[bold]{decision.desired}[/]" if decision.desired != seen.workers else str(decision.desired),
            escape(decision.reason),
        )
    console.print(table)
    console.print("* assumed or remembered, not measured in the last minute", style="dim")
    for action in step.actions:
        console.print(f"  {escape(action)}")


def _write_keda(
    step: Step,
    directory: Path,
    broker_url: str,
    policies: dict[str, ScalingPolicy],
    *,
    polling_interval: float,
    address: str | None,
    namespace: str | None,
) -> None:
    from workers.autoscale.keda import keda_manifests, write_manifests

    try:
        manifests = keda_manifests(
            broker_url,
            policies,
            {decision.queue: decision.worker_rate for decision in step.decisions},
            rate_sources={decision.queue: decision.rate_source for decision in step.decisions},
            polling_interval=max(1, round(polling_interval)),
            address=address,
            namespace=namespace,
        )
    except ValueError as error:
        raise CurationError(str(error)) from error
    for path in write_manifests(directory, manifests):
        console.print(f"wrote {escape(str(path))}")


def _loop(
    scaler: Autoscaler,
    pool: LocalWorkerPool,
    state_file: Path,
    *,
    interval: float,
    once: bool,
    first_step: Callable[[Step], None],
) -> None:
    import redis

    from workers.autoscale.state_file import save_state

    def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # a supervisor's stop means what Ctrl-C means: take the workers down

    first = True
    previous_handler = signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        while True:
            started = time.monotonic()
            try:
                step = scaler.step()
            except redis.RedisError as error:
                if once:
                    raise CurationError(f"could not measure the queues: {error}") from error
                # A broker away for a moment must not end the loop: the workers would lose their manager.
                err_console.print(f"[yellow]could not measure the queues:[/] {escape(str(error))}")
            except OSError as error:
                raise CurationError(f"could not start a worker: {error}") from error
            else:
                _print_step(step, "workers here")
                if first:
                    first_step(step)
                    first = False
            finally:
                # Every round, whatever happened: the file is how a later run knows which processes are ours.
                save_state(state_file, scaler.states, pool.workers)
            if once:
                return
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        console.print(
            f"stopping the {len(pool.workers)} worker(s) started here (SIGKILL after {pool.stop_timeout:g}s)"
        )
        try:
            for action in pool.stop_all():
                console.print(f"  {escape(action)}")
        finally:
            save_state(state_file, scaler.states, pool.workers)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


def autoscale(
    target_minutes: Annotated[
        float, typer.Option(help="Each queued task should be finished within this many minutes.")
    ] = 60.0,
    min_workers: Annotated[int, typer.Option("--min", help="Fewest workers per queue.")] = 0,
    max_workers: Annotated[int, typer.Option("--max", help="Most workers per queue.")] = 8,
    queues: Annotated[
        list[Queue] | None, typer.Option("--queue", help="Only this queue; repeatable (default: all).")
    ] = None,
    default_rate: Annotated[
        list[str] | None,
        typer.Option(
            "--default-rate",
            metavar="QUEUE=TASKS_PER_S",
            help="Tasks/s one worker is assumed to do until a rate is measured; repeatable "
            "(default: generation=0.5, execution=10, verification=20).",
        ),
    ] = None,
    startup_seconds: Annotated[float, typer.Option(help="Seconds a new worker takes to start taking tasks.")] = 60.0,
    cooldown: Annotated[
        float, typer.Option(help="Seconds every recommendation must stay lower before workers are stopped.")
    ] = 300.0,
    apply: Annotated[
        bool, typer.Option("--apply", help="Start and stop local `curation worker` processes to match.")
    ] = False,
    once: Annotated[
        bool, typer.Option("--once", help="With --apply: one round, leaving the workers running (for cron).")
    ] = False,
    interval: Annotated[
        float, typer.Option(help="Seconds between rounds with --apply; also KEDA's pollingInterval.")
    ] = 15.0,
    concurrency: Annotated[
        int, typer.Option(help="--concurrency of each worker started here (rates are measured per worker).")
    ] = 1,
    stop_timeout: Annotated[
        float, typer.Option(help="Seconds a stopping worker gets to finish its tasks before SIGKILL.")
    ] = 60.0,
    log_dir: Annotated[
        Path | None, typer.Option(help="Write each started worker's output to DIR/<worker id>.log.")
    ] = None,
    state_file: Annotated[
        Path | None,
        typer.Option(
            help="Where --apply records its workers and policy state (default: <data dir>/autoscale/state.json)."
        ),
    ] = None,
    keda_out: Annotated[
        Path | None, typer.Option(help="Write a KEDA ScaledObject per queue into this directory.")
    ] = None,
    keda_address: Annotated[
        str | None, typer.Option(help="Redis host:port as the cluster sees it (default: the broker URL's).")
    ] = None,
    keda_namespace: Annotated[str | None, typer.Option(help="Namespace to put in the KEDA manifests.")] = None,
    broker_url: Annotated[str | None, typer.Option(help="Redis broker URL (default: CURATION_BROKER_URL).")] = None,
) -> None:
    """Say how many workers each queue needs to finish its work within the target time.

    Reads the queues' depth (waiting plus delivered-but-unacknowledged tasks) and the completion
    rates tasks record. With --apply it starts and stops `curation worker` processes on this
    machine to follow, every --interval seconds until Ctrl-C (which stops them), or once with
    --once. With --keda-out it writes KEDA ScaledObjects sized from the same rates.
    """
    import redis

    from workers.autoscale.keda import redacted_url
    from workers.autoscale.loop import Autoscaler
    from workers.autoscale.policy import default_policies
    from workers.autoscale.pool import LocalWorkerPool, curation_worker_command
    from workers.autoscale.state_file import AutoscalerBusy, load_state, state_lock

    url = broker_url or get_settings().broker_url
    if not url:
        raise CurationError("no broker: set CURATION_BROKER_URL or pass --broker-url redis://host:6379/0")
    if once and not apply:
        raise CurationError("--once goes with --apply")
    if interval <= 0:
        raise CurationError("--interval must be positive")
    names = [queue.value for queue in queues or Queue]
    try:
        policies = default_policies(
            names,
            target_seconds=target_minutes * 60,
            min_workers=min_workers,
            max_workers=max_workers,
            default_rates=_parse_rates(default_rate or []),
            startup_seconds=startup_seconds,
            scale_down_delay_seconds=cooldown,
        )
    except ValueError as error:
        raise CurationError(str(error)) from error
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as error:
        raise CurationError(f"cannot reach the broker at {redacted_url(url)}: {error}") from error

    def write_keda(step: Step) -> None:
        if keda_out is not None:
            _write_keda(
                step,
                keda_out,
                url,
                policies,
                polling_interval=interval,
                address=keda_address,
                namespace=keda_namespace,
            )

    if not apply:
        step = Autoscaler(client, policies).step()
        _print_step(step, "workers seen")
        write_keda(step)
        return

    path = state_file or get_settings().data_dir / "autoscale" / "state.json"
    try:
        with state_lock(path):
            states, adopted = load_state(path)
            pool = LocalWorkerPool(
                curation_worker_command,
                concurrency=concurrency,
                env={"CURATION_BROKER_URL": url},
                stop_timeout=stop_timeout,
                log_dir=log_dir,
                adopt=adopted,
            )
            scaler = Autoscaler(client, policies, pool=pool, states=states)
            _loop(scaler, pool, path, interval=interval, once=once, first_step=write_keda)
    except (AutoscalerBusy, ValueError) as error:
        raise CurationError(str(error)) from error
