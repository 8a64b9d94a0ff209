"""The `lifelong` command: `serve` (everything), or `api`, `worker` and `migrate` on their own.

`serve` migrates the database, then runs the API and one worker as child processes in their own
process groups, so that one Ctrl-C reaches only this parent, which stops both in order: the API
first (no new jobs), then the worker (a running job stops at its next step and goes back to the
queue, to run again at the next start). It ends by saying where the data lives.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO, Annotated

import typer

from app.auth.cli import keys_cli, refuse_open_bind
from app.blobs.cli import blobs_cli
from app.commands.readable_help import ReadableGroup
from app.settings import Settings, get_settings

cli = typer.Typer(cls=ReadableGroup, add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])
cli.add_typer(keys_cli, name="keys")
cli.add_typer(blobs_cli, name="blobs")

HostOption = Annotated[str | None, typer.Option(help="interface to listen on",
                                                 show_default="LIFELONG_HOST or 127.0.0.1")]
PortOption = Annotated[int | None, typer.Option(help="port to listen on", show_default="LIFELONG_PORT or 8000")]
STOP_GRACE_S = 30.0
GET_REQUEST_BYTES = 4 << 20


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from app.db.migrate import upgrade_database

    settings = get_settings()
    upgrade_database(settings)
    typer.echo(f"database at head: {_redact(settings.resolved_database_url)}")


@cli.command()
def api(host: HostOption = None, port: PortOption = None) -> None:
    """Run the HTTP API alone (migrates first)."""
    import uvicorn

    from app.logging_setup import configure_logging
    from app.main import create_app

    configure_logging(in_background=True)
    settings = get_settings()
    settings = settings.model_copy(update={"host": host or settings.host, "port": port or settings.port})
    refuse_open_bind(settings.host)
    uvicorn.run(  # the health listener, when LIFELONG_HEALTH_PORT is set, binds the same host
        create_app(settings), host=settings.host, port=settings.port, log_level="info",
        log_config=None,  # our handler (app/logging_setup.py): JSON lines off a terminal
        # A GET prediction carries up to 100 rows in its query string, far past h11's 16 KiB default.
        h11_max_incomplete_event_size=GET_REQUEST_BYTES,
        timeout_keep_alive=settings.keep_alive_s,  # longer than clients' pools: see app/settings.py
    )


QueuesOption = Annotated[str | None, typer.Option(
    help="comma-separated queues to take jobs from, of cpu and gpu", show_default="LIFELONG_WORKER_QUEUES, else"
         " both on the embedded broker, else the queue of the worker's device")]
NameOption = Annotated[str, typer.Option(
    help="Celery node name, recorded in each job this worker runs (%h is the host name)")]


@cli.command()
def worker(queues: QueuesOption = None, name: NameOption = "lifelong@%h") -> None:
    """Run one job worker alone (migrates first); it trains on cuda when torch sees a GPU."""
    from app.db.migrate import upgrade_database
    from app.jobs.dispatch import QUEUES
    from app.mas.devices import pick_device

    settings = get_settings()
    try:
        device = pick_device(settings.worker_device)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="LIFELONG_WORKER_DEVICE") from error
    if queues is None:
        # The one embedded worker runs everything; in a cluster a worker takes its device's queue.
        queues = settings.worker_queues or (
            ",".join(QUEUES) if settings.embedded_broker else ("gpu" if device.type == "cuda" else "cpu"))
    chosen = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(chosen) - set(QUEUES))
    if not chosen or unknown:
        raise typer.BadParameter(f"queues must be some of {', '.join(QUEUES)}; got {unknown or 'none'}",
                                 param_hint="--queues")
    from app.logging_setup import configure_worker_logging

    configure_worker_logging()
    log = logging.getLogger("app.cli")
    log.info("worker: queues %s, device %s", ",".join(chosen), device)
    if chosen == ["gpu"] and device.type == "cpu":
        log.warning("worker: a gpu-queue worker with no GPU; its jobs will run on the CPU")
    upgrade_database(settings)
    lock = _one_embedded_worker(settings) if settings.embedded_broker else None  # noqa: F841 - held while we run
    from workers.tasks import celery

    concurrency = celery.conf.worker_concurrency
    # On a real broker, workers send heartbeats and task events, which is what Flower shows; the
    # file broker has no fan-out for them, so there they are off.
    quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat"] if settings.embedded_broker else ["-E"]
    celery.worker_main([
        "worker", "--loglevel=INFO", "--pool=prefork", f"--concurrency={concurrency}", f"--queues={','.join(chosen)}",
        f"--hostname={name}", *quiet,
    ])


LOCK_WAIT_S = 10.0  # a killed worker's pool processes can hold the lock a moment after it died


def _lock_within(handle: IO[str], wait_s: float) -> bool:
    """Take an exclusive lock on `handle`, retrying for `wait_s`: when serve restarts a killed worker,
    the dead worker's pool processes may still be exiting (and holding the inherited lock) on a busy
    machine; a live second worker holds it for good and is refused after the wait."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)


def _one_embedded_worker(settings: Settings) -> IO[str]:
    """The embedded broker has exactly one worker, which at start resets the jobs a killed worker left
    `running`: a second worker on the same folder (a second `lifelong serve`) would reset the first one's
    running job. An exclusive lock on <var_dir>/embedded-worker.lock, held for the worker's life, makes
    the second one refuse to start instead."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    handle = open(settings.var_dir / "embedded-worker.lock", "a+")  # noqa: SIM115 - kept open: the lock
    if not _lock_within(handle, LOCK_WAIT_S):
        handle.seek(0)
        typer.echo(f"lifelong: another worker already runs on this folder's embedded broker ({settings.var_dir},"
                   f" pid {handle.read().strip() or '?'}); it keeps its jobs. Stop it first, or use one"
                   " `lifelong serve` per folder.", err=True)
        raise typer.Exit(2) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


@cli.command()
def serve(host: HostOption = None, port: PortOption = None) -> None:
    """Run the API and one worker; Ctrl-C stops both. A child that dies after it started is started
    again (a killed worker's job goes back to the queue); one that fails while starting (a port in use,
    a second serve on this folder) stops both."""
    settings = get_settings()
    migrate()
    refuse_open_bind(host or settings.host)
    command = [sys.executable, "-m", "app.cli"]
    listen = ["--host", host or settings.host, "--port", str(port or settings.port)]
    arguments = {"api": [*command, "api", *listen], "worker": [*command, "worker"]}
    children = {name: subprocess.Popen(args, start_new_session=True) for name, args in arguments.items()}
    started = dict.fromkeys(children, time.monotonic())
    restarts: list[float] = []
    stop = _stop_requested()
    code = 0
    while not stop() and code == 0:
        for name, child in children.items():
            if child.poll() is None:
                continue
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < RESTART_WINDOW_S]
            failed_to_start = child.returncode == 2 or now - started[name] < STARTUP_S  # 2: it refused to start
            if failed_to_start or len(restarts) >= MAX_RESTARTS:
                why = "while starting" if failed_to_start else f"{MAX_RESTARTS} times in a few minutes"
                typer.echo(f"lifelong: the {name} exited with {child.returncode} {why}; stopping", err=True)
                code = 1
                break
            typer.echo(f"lifelong: the {name} exited with {child.returncode}; starting it again", err=True)
            _kill_group(child)  # its pool processes too, which would otherwise live on holding its lock
            children[name] = subprocess.Popen(arguments[name], start_new_session=True)
            started[name] = now
            restarts.append(now)
        time.sleep(0.2)
    typer.echo("lifelong: stopping the API, then the worker (a running job goes back to the queue)")
    _stop_child(children["api"], signal.SIGINT, group=False)
    _stop_child(children["worker"], signal.SIGTERM, group=False)
    _where_the_data_lives(settings)
    raise typer.Exit(code)


STARTUP_S = 5.0  # a child that exits sooner (or with status 2) failed to start: a restart would fail again
MAX_RESTARTS, RESTART_WINDOW_S = 5, 300.0


def _stop_requested() -> Callable[[], bool]:
    requested = {"count": 0}

    def on_signal(signum: int, _frame: object) -> None:
        requested["count"] += 1
        if requested["count"] > 1:
            raise KeyboardInterrupt  # a second Ctrl-C: stop waiting, children get killed below

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return lambda: requested["count"] > 0


def _stop_child(child: subprocess.Popen, signum: int, *, group: bool) -> None:
    if child.poll() is not None:
        return
    try:
        os.killpg(child.pid, signum) if group else child.send_signal(signum)
        child.wait(timeout=STOP_GRACE_S)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    except ProcessLookupError:
        pass


def _kill_group(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _where_the_data_lives(settings: Settings) -> None:
    typer.echo(
        "lifelong stopped. Your data lives in:\n"
        f"  database: {_redact(settings.resolved_database_url)}\n"
        f"  blobs:    {_redact(settings.blob_url) if settings.blob_url else settings.resolved_blob_dir}\n"
        f"  broker:   {_redact(settings.broker_url) if settings.broker_url else settings.broker_dir}\n"
        "Start again with `lifelong serve` in this directory to pick up where you left off."
    )


def _redact(url: str) -> str:
    """A URL without its password, fit to print."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest and ":" in rest.split("@", 1)[0]:
        user = rest.split("@", 1)[0].split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{rest.split('@', 1)[1]}"
    return url


# The client commands (models, tasks, jobs, …) that drive a running server over HTTP.
from app.commands import register as register_client_commands  # noqa: E402

register_client_commands(cli)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
