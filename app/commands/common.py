"""What every client command shares: the connection options, exit codes, error mapping and output.

Scripts rely on two things: `--json` prints the server's answer as JSON on stdout (progress and
messages go to stderr), and the exit code says what happened (see `ExitCode`). A refusal from the
server is printed with the server's own `detail`.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from app.client import DEFAULT_URL, Client, ConnectionFailed, Job, LifelongError, NotFound, WaitTimeout

P = ParamSpec("P")
R = TypeVar("R")


class ExitCode(IntEnum):
    OK = 0
    JOB_FAILED = 1  # the job ended failed or cancelled
    USAGE = 2  # bad arguments (click's own code)
    HTTP_ERROR = 3  # the server refused the request (4xx other than 404, or 5xx)
    NOT_FOUND = 4  # no such model, version, task, job or dataset
    UNREACHABLE = 5  # the server could not be reached
    TIMEOUT = 6  # --timeout passed while waiting for a job (the job goes on)
    INTERRUPTED = 130  # Ctrl-C while following a job (the job goes on); 128 + SIGINT, as shells say


JsonOption = Annotated[bool, typer.Option("--json", help="print the server's answer as JSON (for scripts)")]
TimeoutOption = Annotated[float | None, typer.Option(help="stop waiting after this many seconds (exit 6)")]
DetachOption = Annotated[bool, typer.Option("--detach", help="print the queued job and return at once")]


def connect(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(envvar="LIFELONG_URL", help="the server of the client commands")] = DEFAULT_URL,
    api_key: Annotated[str | None, typer.Option(envvar="LIFELONG_API_KEY", help="Bearer key for the server")] = None,
) -> None:
    """Global options: where the server is, and the key to it."""
    ctx.obj = {"url": url, "api_key": api_key}


def client_of(ctx: typer.Context) -> Client:
    settings = ctx.obj or {}
    client = Client(settings.get("url"), api_key=settings.get("api_key"))
    ctx.call_on_close(client.close)
    return client


def handles_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the client's exceptions into a message on stderr and a documented exit code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except NotFound as error:
            fail(f"not found: {error.message}", ExitCode.NOT_FOUND)
        except ConnectionFailed as error:
            fail(error.message, ExitCode.UNREACHABLE)
        except WaitTimeout as error:
            fail(error.message, ExitCode.TIMEOUT)
        except LifelongError as error:
            fail(f"the server refused ({error.status_code}): {error.message}", ExitCode.HTTP_ERROR)
        raise AssertionError("unreachable")

    return run


def fail(message: str, code: ExitCode) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(int(code))


# What a data file is called: a value ending so (or with a '/' in it) names a file, never a dataset id.
DATA_SUFFIXES = frozenset({".npz", ".npy", ".csv", ".jsonl", ".json", ".txt", ".zip", ".tar", ".gz", ".tgz",
                           ".png", ".jpg", ".jpeg"})


def looks_like_a_path(value: str) -> bool:
    """A '/' (or the OS's separator) or a data file's suffix: what a person typing a dataset id never types."""
    return "/" in value or os.sep in value or Path(value).suffix.lower() in DATA_SUFFIXES


def data_source(value: str, option: str) -> str | Path:
    """A file to upload, or a dataset id. A value that looks like a path but names no file is a usage error
    (exit 2) naming it: taken for a dataset id it came back as the server's bare "Not Found"."""
    path = Path(value).expanduser()
    if path.is_file():
        return path
    if looks_like_a_path(value):
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        fail(f"{option}: no such file: {value} ({what}; a dataset id has no '/' nor a file suffix)", ExitCode.USAGE)
    return value


def production_of(model: dict[str, Any]) -> int | None:
    """The version `production` names (the model's `head` field on a server from before aliases)."""
    return (model.get("aliases") or {}).get("production", model.get("head"))


def console() -> Console:
    # Off a terminal (pipes, CI) rich would wrap tables at 80 columns.
    return Console(width=None if sys.stdout.isatty() else 160)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def print_table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console().print(table)


def print_fields(fields: dict[str, Any]) -> None:
    width = max(len(k) for k in fields)
    for key, value in fields.items():
        typer.echo(f"{key.ljust(width)}  {'' if value is None else value}")


def describe_progress(job: Job) -> str:
    progress = job.progress
    if not progress:
        return ""
    text = f"{progress['done']}/{progress['total']} {progress['unit']}"
    return text if progress.get("loss") is None else f"{text}, loss {progress['loss']:.4f}"
