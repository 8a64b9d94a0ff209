"""`lifelong jobs list|show|watch|cancel`: the jobs that train tasks and refresh importance."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from app.client import Job
from app.commands.common import (
    JsonOption,
    TimeoutOption,
    client_of,
    describe_progress,
    handles_errors,
    print_fields,
    print_json,
    print_table,
)
from app.commands.follow import follow

jobs = typer.Typer(no_args_is_help=True, help="List, show, watch and cancel jobs.")

State = Literal["queued", "running", "succeeded", "failed", "cancelled"]


@jobs.command("list")
@handles_errors
def list_(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="only this model's jobs")] = None,
    state: Annotated[State | None, typer.Option(help="only jobs in this state")] = None,
    limit: Annotated[int, typer.Option(help="at most this many (the server takes up to 1000)")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Jobs, newest first."""
    found = client_of(ctx).list_jobs(model=model, state=state, limit=limit)
    if as_json:
        return print_json([job.data for job in found])
    print_table(None, ["id", "kind", "model", "task", "state", "progress", "version", "created"],
                [(j.id, j.kind, j.model, j.data.get("task"), j.state, describe_progress(j), j.version,
                  j.data.get("created_at")) for j in found])


def _print_job(job: Job) -> None:
    error = job.error
    print_fields({
        "id": job.id, "kind": job.kind, "model": job.model, "task": job.data.get("task"), "state": job.state,
        "progress": describe_progress(job), "base version": job.data.get("base_version"), "version": job.version,
        "error": f"{error['type']}: {error['message']}" if error else None, "attempts": job.data.get("attempts"),
        "created": job.data.get("created_at"), "started": job.data.get("started_at"),
        "finished": job.data.get("finished_at"),
    })


@jobs.command("show")
@handles_errors
def show(ctx: typer.Context, job_id: str, as_json: JsonOption = False) -> None:
    """One job: state, progress, result or error."""
    job = client_of(ctx).get_job(job_id)
    print_json(job.data) if as_json else _print_job(job)


@jobs.command("watch")
@handles_errors
def watch(ctx: typer.Context, job_id: str, timeout: TimeoutOption = None, as_json: JsonOption = False) -> None:
    """Follow a job with a live progress bar until it ends; exit 1 unless it succeeded. Ctrl-C stops
    only the watching (exit 130): the job goes on."""
    client = client_of(ctx)
    job = client.get_job(job_id)
    what = " ".join(part for part in (job.kind, job.data.get("task")) if part)
    typer.echo(f"job {job.id}: {what} on {job.model}", err=True)
    follow(client, job, as_json=as_json, timeout=timeout)


@jobs.command("cancel")
@handles_errors
def cancel(
    ctx: typer.Context,
    job_id: str,
    wait: Annotated[bool, typer.Option("--wait", help="wait until the job has stopped")] = False,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a job: a queued one at once, a running one at its next step. It creates nothing."""
    job = client_of(ctx).cancel_job(job_id)
    if wait:
        job.wait(timeout=timeout)
    print_json(job.data) if as_json else typer.echo(f"job {job.id} {job.state}"
                                                     f"{' (stopping)' if job.state == 'running' else ''}")
