"""The client half of the `lifelong` command: subcommands that drive a running server over HTTP.

`register(cli)` adds them to the server's own typer app (serve/api/worker/migrate stay as they
are), with the global `--url` and `--api-key` options. Each command is a thin shell over
`app.client.Client`; exit codes are listed in `app.commands.common.ExitCode`.
"""

from __future__ import annotations

import typer

from app.commands.aliases import aliases, promote
from app.commands.common import connect, handles_errors
from app.commands.datasets import datasets
from app.commands.drift import drift, drift_reports
from app.commands.export import export
from app.commands.jobs import jobs
from app.commands.learning import importance, predict, tasks
from app.commands.models import models
from app.commands.scoring import evaluate
from app.commands.shadow import shadow
from app.commands.versions import evaluation, head, versions
from app.commands.webhooks import webhooks


def register(cli: typer.Typer) -> None:
    cli.callback()(connect)
    for name, group in (("models", models), ("datasets", datasets), ("tasks", tasks), ("importance", importance),
                        ("jobs", jobs), ("versions", versions), ("aliases", aliases)):
        cli.add_typer(group, name=name)
    cli.add_typer(head, name="head", hidden=True)  # deprecated: `promote` (one name, production, everywhere)
    cli.add_typer(webhooks, name="webhooks")
    cli.add_typer(shadow, name="shadow")
    cli.command("predict")(handles_errors(predict))
    cli.command("evaluation")(handles_errors(evaluation))
    cli.command("promote")(handles_errors(promote))
    cli.command("export")(handles_errors(export))
    cli.command("evaluate")(handles_errors(evaluate))
    cli.command("drift")(handles_errors(drift))
    cli.command("drift-reports")(handles_errors(drift_reports))
