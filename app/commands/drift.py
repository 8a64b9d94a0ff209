"""`lifelong drift` and `lifelong drift-reports`: is a deployment batch still like what the model learned?

`drift MODEL DATA` starts a drift job (the batch against every task's reference features at a version,
by the permutation MMD test at the model's drift_alpha over the number of tasks), follows it as `tasks add`
does, and prints the report: per task the statistic, p-value and verdict, and the nearest task.
`drift-reports MODEL` lists the kept reports, newest first (drift jobs' and importance refreshes'). Both
are top-level commands, like `evaluate` and `evaluation`: a group `drift` could not also take MODEL DATA.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from app.client import Job, QueueName
from app.commands.common import JsonOption, TimeoutOption, client_of, data_source, print_json, print_table
from app.commands.follow import follow


def drift(
    ctx: typer.Context,
    model: str,
    data: Annotated[str, typer.Argument(
        help="the batch (labels, if any, are ignored): a file (.npz/.csv arrays, .jsonl/.csv texts, .zip/.tar"
             " images) or a dataset id")],
    version: Annotated[int | None, typer.Option(help="the version whose trunk and references test the batch",
                                                show_default="production")] = None,
    alias: Annotated[str | None, typer.Option(help="test at the version this alias names instead",
                                              show_default="production")] = None,
    queue: Annotated[QueueName | None, typer.Option(help="cpu or gpu workers", show_default="the model's")] = None,
    wait: Annotated[bool, typer.Option("--wait/--detach", help="follow the job and print its report, or print the"
                                                               " queued job and return at once")] = True,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Test DATA against every task MODEL learned (drift job): per task the MMD² statistic, its permutation
    p-value and whether it drifted (p ≤ alpha / tasks), and the nearest task. Exit 0 whether or not it drifted."""
    client = client_of(ctx)
    source = data_source(data, "DATA")  # a file is uploaded first (same bytes, same dataset)
    job = client.drift(model, source, version=version, alias=alias, queue=queue)
    if not wait:
        return print_json(job.data) if as_json else typer.echo(job.id)
    typer.echo(f"job {job.id}: testing a batch against {model}'s tasks", err=True)
    follow(client, job, as_json=as_json, timeout=timeout, show=print_drift_job)


def print_drift_job(job: Job) -> None:
    print_drift_report(job.model, job.data["result"])


def print_drift_report(model: str, report: dict[str, Any]) -> None:
    """Per task its verdict, then the nearest task, the level and the rows: what `drift` prints."""
    tasks = report["tasks"]
    level = report["alpha"] / max(len(tasks), 1)
    print_table(f"{model} version {report['version']}: drift per task (each at alpha / tasks = {level:.4g})",
                ["task", "statistic", "p-value", "drift", "at this trunk", "reference rows"],
                [(task, f"{t['statistic']:.4g}", f"{t['p_value']:.4g}", "DRIFT" if t["drift"] else "no",
                  "yes" if t["at_this_trunk"] else "no", t["reference_rows"]) for task, t in tasks.items()])
    typer.echo(f"nearest task: {report.get('nearest_task') or '-'}")
    typer.echo(f"alpha: {report['alpha']}")
    typer.echo(f"n: {report['n']}")
    drifted = [task for task, t in tasks.items() if t["drift"]]
    typer.echo(f"drift: {'yes (' + ', '.join(drifted) + ')' if drifted else 'no'}")


def drift_reports(
    ctx: typer.Context,
    model: str,
    limit: Annotated[int | None, typer.Option(min=1, max=1000, help="the newest reports, at most",
                                              show_default="100")] = None,
    as_json: JsonOption = False,
) -> None:
    """MODEL's drift reports, newest first: drift jobs' batches and importance refreshes' (source), with the
    tasks that drifted and the nearest task."""
    reports = client_of(ctx).drift_reports(model, limit=limit)
    if as_json:
        return print_json(reports)
    if not reports:
        typer.echo(f"{model}: no drift reports yet (lifelong drift {model} DATA makes one)")
        return
    print_table(f"{model}: drift reports, newest first",
                ["id", "created", "version", "source", "job", "rows", "alpha", "drifted", "nearest task"],
                [(r["id"], r["created_at"], r["version"], r["source"], r["job"], r["n"], r["alpha"],
                  ", ".join(t for t, v in r["tasks"].items() if v["drift"]) or "none", r.get("nearest_task") or "-")
                 for r in reports])
