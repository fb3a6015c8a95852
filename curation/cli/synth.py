"""`curation synth`, `curation runs` and `curation worker`: generating at scale."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text
from sqlalchemy import text

from curation.cli.context import console, database, err_console
from curation.errors import CurationError
from curation.settings import get_settings

runs_app = typer.Typer(help="Synthesis runs: status, details, resume, cancel.", invoke_without_command=True)


def parse_teacher(teacher: str, base_url: str | None, api: str | None, api_key_env: str | None, concurrency: int,
                  request_timeout: float) -> Any:  # fmt: skip
    """`embedded`, `openai:MODEL` (with --base-url) or `transformers:PATH`."""
    from workers.teachers.registry import EMBEDDED, OPENAI, TRANSFORMERS
    from workers.teachers.spec import TeacherSpec

    backend, _, name = teacher.partition(":")
    if backend == EMBEDDED and not name:
        from workers.teachers.embedded_model import embedded_teacher_spec

        return embedded_teacher_spec()
    if backend == OPENAI and name:
        if not base_url:
            raise CurationError("an openai teacher needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        parameters: dict[str, Any] = {"base_url": base_url, "concurrency": concurrency,
                                      "request_timeout": request_timeout}  # fmt: skip
        if api is not None:  # else the template's: completions for two-stage templates, chat otherwise
            if api not in ("chat", "completions"):
                raise CurationError(f"--api is chat or completions, not {api!r}")
            parameters["api"] = api
        if api_key_env:
            parameters["api_key_env"] = api_key_env
        return TeacherSpec(OPENAI, name, parameters)
    if backend == TRANSFORMERS and name:
        return TeacherSpec(TRANSFORMERS, name)
    raise CurationError(f"unknown teacher {teacher!r}: use embedded, openai:MODEL or transformers:PATH")


class RateColumn(ProgressColumn):
    """Items per second (rich's own speed columns speak of bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:>8,.1f}/s" if speed else "       -/s", style="progress.data.speed")


class RunDisplay:
    """A live view of a run from its counters: generated and labelled, with rate and ETA."""

    def __init__(self, expected: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=err_console, disable=not err_console.is_terminal,
        )  # fmt: skip
        self.generated: TaskID = self.progress.add_task("generated", total=expected)
        self.labelled: TaskID = self.progress.add_task("labelled", total=expected)

    def update(self, progress: Any) -> None:
        self.progress.update(self.generated, completed=progress.generated + progress.failed)
        self.progress.update(self.labelled, completed=progress.labelled)

    def __enter__(self) -> RunDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def synth(
    task: Annotated[str, typer.Option(help="Task whose problems to generate for.")],
    teacher: Annotated[str, typer.Option(help="embedded | openai:MODEL | transformers:PATH")] = "embedded",
    template: Annotated[
        str, typer.Option(help="Template name (zero-shot-cot, pad-program, few-shot-cot-<task>, ...).")
    ] = "pad-program",
    template_version: Annotated[int | None, typer.Option(help="Template version (default: newest).")] = None,
    split: Annotated[str | None, typer.Option(help="Only this split.")] = None,
    samples: Annotated[int, typer.Option("--samples", "-D", help="Samples per problem (diverse reasoning).")] = 1,
    temperature: Annotated[float, typer.Option("--temperature", "-T")] = 0.0,
    top_p: Annotated[float | None, typer.Option()] = None,
    max_tokens: Annotated[int, typer.Option(help="Most tokens per completion.")] = 256,
    stop: Annotated[
        list[str] | None,
        typer.Option(help="Stop sequence; repeatable (default: the next exemplar's opening for few-shot templates)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (sample i uses seed + i).")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many problems.")] = None,
    offset: Annotated[int, typer.Option(help="Skip this many problems first.")] = 0,
    name: Annotated[str | None, typer.Option(help="Run name.")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="API root of an openai teacher, e.g. http://host:8000/v1.")
    ] = None,
    api: Annotated[
        str | None,
        typer.Option(help="chat or completions (default: completions for zero-shot-cot's two stages, else chat)."),
    ] = None,
    api_key_env: Annotated[str | None, typer.Option(help="Environment variable holding the API key.")] = None,
    concurrency: Annotated[int, typer.Option(help="Teacher requests in flight at once.")] = 16,
    request_timeout: Annotated[float, typer.Option(help="Seconds before a teacher request is retried.")] = 120.0,
    batch_size: Annotated[int, typer.Option(help="Problems per generation task.")] = 64,
    timeout: Annotated[float, typer.Option(help="Sandbox wall-clock seconds per program.")] = 2.0,
    wait: Annotated[
        bool,
        typer.Option(
            help="Distributed mode: wait and show progress until the run ends (--no-wait: only send the work; "
            "`curation supervise` sees it through)."
        ),
    ] = True,
    stall_seconds: Annotated[
        float,
        typer.Option(
            help="While waiting, with no supervisor running: look into the run after this long without progress."
        ),
    ] = 120.0,
) -> None:
    """Generate D samples per problem with a teacher, then execute and verify them.

    With CURATION_BROKER_URL set the work goes to Celery workers; without it everything runs here.
    Interrupt it at any time: `curation runs resume ID` asks the teacher only for what is missing.
    """
    from workers.sandbox import Limits
    from workers.synthesis import RunSpec, create_run

    if samples > 1 and temperature == 0:
        err_console.print(
            f"[bold yellow]warning:[/] --samples {samples} at --temperature 0: greedy decoding gives every sample "
            "the same text, so the extra samples cost teacher calls and add nothing (diverse reasoning samples at "
            "a temperature, e.g. -T 0.7)",
            highlight=False,
        )
    spec = RunSpec(
        task=task, teacher=parse_teacher(teacher, base_url, api, api_key_env, concurrency, request_timeout),
        template=template, template_version=template_version, split=split, samples=samples,
        temperature=temperature, top_p=top_p, max_tokens=max_tokens, stop=tuple(stop) if stop else None, seed=seed,
        limit=limit, offset=offset, name=name, batch_size=batch_size, limits=Limits(wall_seconds=timeout),
    )  # fmt: skip
    db = database()
    with db.transaction() as session:
        run = create_run(session, spec)
        run_id, expected = run.id, run.problems_total * run.samples_per_problem
    console.print(f"run [bold]#{run_id}[/]: {expected:,} generations ({run.problems_total:,} problems x {samples})")
    _drive(run_id, expected, wait=wait, stall_seconds=stall_seconds, start=True)


def _drive(
    run_id: int, expected: int, *, wait: bool, stall_seconds: float, start: bool, retry_failed: bool = False
) -> None:
    from workers.driver import run_embedded, wait_distributed
    from workers.synthesis import resume_run, start_run

    db = database()
    with RunDisplay(expected) as display:
        if get_settings().broker_url:
            from workers.celery_app import app
            from workers.dispatch import CeleryDispatcher
            from workers.tasks import ROUTES

            dispatcher = CeleryDispatcher(app, ROUTES)
            if start:
                start_run(db, dispatcher, run_id)
            else:
                resume_run(db, dispatcher, run_id, retry_failed=retry_failed)
            if not wait:
                console.print(f"sent to the workers; follow it with `curation runs show {run_id}`")
                return
            final = wait_distributed(db, dispatcher, run_id, stall_seconds=stall_seconds, on_progress=display.update)
        else:
            final = run_embedded(db, run_id, on_progress=display.update, retry_failed=retry_failed)
    _summary(run_id)
    if final.status.value == "failed":
        from curation.repositories.runs import ALL_FAILED, get_run

        with db.read() as session:
            error = get_run(session, run_id).error or ""
        command = f"curation runs resume {run_id}" + (" --retry-failed" if error.startswith(ALL_FAILED) else "")
        raise CurationError(f"run {run_id} failed: {error}; `{command}` continues it")
    if not final.done:
        raise CurationError(
            f"run {run_id} is not finished ({final.status}); `curation runs resume {run_id}` continues it"
        )


def _summary(run_id: int) -> None:
    with database().read() as session:
        rows = session.execute(
            text(
                "SELECT status, generations, failed, parsed, executed_ok, correct, pass_rate FROM run_quality "
                "WHERE synthesis_run_id = :run_id"
            ),
            {"run_id": run_id},
        ).all()
    for row in rows:
        values = dict(row._mapping)
        rate = values["pass_rate"]
        console.print(
            f"run #{run_id} {values['status']}: {values['generations']:,} generations ({values['failed']:,} failed), "
            f"{values['parsed']:,} parsed, {values['executed_ok']:,} executed ok, {values['correct']:,} correct"
            + (f" ({rate:.1%})" if rate is not None else "")
        )


@runs_app.callback()
def runs(ctx: typer.Context, limit: Annotated[int, typer.Option(help="Most recent runs to list.")] = 20) -> None:
    """List synthesis runs (newest first)."""
    if ctx.invoked_subcommand is not None:
        return
    with database().read() as session:
        result = session.execute(
            text(
                "SELECT r.id, r.name, t.name AS task, r.split, m.name AS teacher, pt.name AS template, r.status, "
                "r.problems_total * r.samples_per_problem AS expected, r.generations_done AS generated, "
                "r.generations_failed AS failed, r.rationales_labelled AS labelled, r.created_at "
                "FROM synthesis_run r JOIN task t ON t.id = r.task_id JOIN model m ON m.id = r.teacher_id "
                "JOIN prompt_template pt ON pt.id = r.template_id ORDER BY r.id DESC LIMIT :limit"
            ),
            {"limit": limit},
        )
        columns, rows = list(result.keys()), result.all()
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v)[:40] for v in row))
    console.print(table)


@runs_app.command("show")
def show(run_id: Annotated[int, typer.Argument(help="Run id.")]) -> None:
    """A run's progress, quality and execution errors."""
    from curation.repositories.runs import get_run
    from workers.driver import progress_of

    progress = progress_of(database(), run_id)
    console.print(
        f"run #{run_id}: {progress.status}; generated {progress.generated:,} and failed {progress.failed:,} "
        f"of {progress.expected:,}; labelled {progress.labelled:,}"
    )
    with database().read() as session:
        error = get_run(session, run_id).error
    if error:  # why a run failed, for those who sent it with --no-wait
        console.print(f"  failed because {error}", highlight=False)
    _summary(run_id)
    with database().read() as session:
        errors = session.execute(
            text(
                "SELECT status, error_type, executions, share FROM execution_error_breakdown "
                "WHERE synthesis_run_id = :run_id ORDER BY executions DESC"
            ),
            {"run_id": run_id},
        ).all()
    for status, error_type, executions, share in errors:
        console.print(f"  executions {status} {error_type}: {executions:,} ({share:.1%})")


@runs_app.command("resume")
def resume(
    run_id: Annotated[int, typer.Argument(help="Run id.")],
    retry_failed: Annotated[bool, typer.Option(help="Also ask again for generations that failed.")] = False,
    wait: Annotated[bool, typer.Option(help="Distributed mode: wait until the run ends.")] = True,
    stall_seconds: Annotated[
        float,
        typer.Option(
            help="While waiting, with no supervisor running: look into the run after this long without progress."
        ),
    ] = 120.0,
) -> None:
    """Continue a run: ask the teacher only for what is missing, then execute and verify it."""
    from workers.driver import progress_of

    progress = progress_of(database(), run_id)
    _drive(run_id, progress.expected, wait=wait, stall_seconds=stall_seconds, start=False, retry_failed=retry_failed)


@runs_app.command("cancel")
def cancel(run_id: Annotated[int, typer.Argument(help="Run id.")]) -> None:
    """Stop a run: its queued generation tasks do nothing when they arrive.

    A completed or cancelled run is refused (there is nothing left to stop); a pending, running or
    failed one (whose queued work could still arrive) is cancelled.
    """
    from curation.repositories.runs import cancel_run

    with database().transaction() as session:
        cancel_run(session, run_id)
    console.print(f"run #{run_id} cancelled")


def supervise(
    interval: Annotated[float, typer.Option(help="Seconds between looks.")] = 10.0,
    stall_seconds: Annotated[
        float, typer.Option(help="A run whose counters have not moved this long is looked into.")
    ] = 120.0,
    max_stalls: Annotated[
        int, typer.Option(help="Fail a run whose work was sent again this many times without progress.")
    ] = 5,
    idle_seconds: Annotated[
        float | None,
        typer.Option(
            help="Fail a run whose work waits in queues nothing was taken from for this long "
            "(default: stall-seconds x max-stalls)."
        ),
    ] = None,
    ticks: Annotated[int | None, typer.Option(help="Look this many times, then exit (default: for ever).")] = None,
    inspect_timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="Seconds to wait for the workers to say which delivered tasks they hold (each look asks "
            "twice); a worker slower to answer (busy, or far from the broker) has its tasks taken for lost "
            "and sent again.",
        ),
    ] = 1.0,
) -> None:
    """Watch every running run and send again the work a broker restart or a dead worker lost.

    One per deployment, beside the workers (needs CURATION_BROKER_URL, a Redis broker): runs then
    finish without the command that started them. See workers/supervisor.py for the rules.
    """
    settings = get_settings()
    if not settings.broker_url or not settings.broker_url.startswith(("redis://", "rediss://")):
        raise CurationError("set CURATION_BROKER_URL to the workers' Redis broker (redis://host:6379/0) to supervise")
    import logging

    from workers.celery_app import app
    from workers.dispatch import CeleryDispatcher
    from workers.supervisor import Supervisor
    from workers.tasks import ROUTES

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    supervisor = Supervisor(
        database(), app, CeleryDispatcher(app, ROUTES),
        stall_seconds=stall_seconds, max_stalls=max_stalls, idle_seconds=idle_seconds, inspect_timeout=inspect_timeout,
    )  # fmt: skip
    console.print(f"supervising the runs of {database().engine.url.render_as_string()} every {interval:g} s")
    supervisor.run_forever(interval, ticks=ticks)


def worker(
    queues: Annotated[
        str, typer.Option(help="Comma-separated queues: generation, execution, verification, training (GPU).")
    ] = ("generation,execution,verification"),
    concurrency: Annotated[int, typer.Option(help="Processes (or threads) working at once.")] = 2,
    pool: Annotated[str, typer.Option(help="prefork (CPU work), threads (waiting on a teacher) or solo.")] = "prefork",
    autoscale: Annotated[str | None, typer.Option(help="MAX,MIN processes, adjusted by load (prefork).")] = None,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "info",
    hostname: Annotated[str | None, typer.Option(help="Worker name (default: celery@host).")] = None,
) -> None:
    """Start a Celery worker for the given queues (needs CURATION_BROKER_URL)."""
    if not get_settings().broker_url:
        raise CurationError("set CURATION_BROKER_URL (e.g. redis://127.0.0.1:6379/0) to run workers")
    from workers.autoscale.metrics import WORKER_ID_ENV
    from workers.celery_app import app
    from workers.queues import Queue

    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(names) - {q.value for q in Queue})
    if unknown:
        raise CurationError(f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(q.value for q in Queue)}")
    argv = ["worker", "-Q", ",".join(names), "-P", pool, "--loglevel", loglevel, "-O", "fair"]
    argv += ["--autoscale", autoscale] if autoscale else ["-c", str(concurrency)]
    # Several workers on one host need distinct names; the autoscaler gives each it starts an id.
    worker_id = os.environ.get(WORKER_ID_ENV)
    if hostname or worker_id:
        argv += ["-n", hostname or f"{worker_id}@%h"]
    if "training" in names:
        import trainer.tasks  # noqa: F401  (registers curation.train on the app)
    app.worker_main(argv)
