"""`lifelong webhooks add|list|remove|deliveries`: a model's events sent to a URL, and what became of them.

A hook receives `job.finished`, `version.created` and `alias.moved` (or those named with `--events`) as
signed POSTs, delivered at least once and retried with backoff; `deliveries` is its log. The secret is
asked for when `--secret` is not given (so that it stays out of the shell's history); the server never
shows it again.
"""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from app.commands.common import JsonOption, client_of, handles_errors, print_json, print_table
from app.webhooks.events import EVENTS as WEBHOOK_EVENTS

webhooks = typer.Typer(no_args_is_help=True, help="Send a model's events to a URL, signed; show the deliveries.")

EVENTS = ",".join(WEBHOOK_EVENTS)
State = Literal["pending", "delivered", "failed"]


@webhooks.command("add")
@handles_errors
def add(
    ctx: typer.Context,
    model: str,
    url: Annotated[str, typer.Option(help="the http(s) URL events are POSTed to")],
    secret: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                        help="key of the HMAC-SHA256 signature (asked for when not given)")],
    events: Annotated[str, typer.Option(help="comma-separated: " + ", ".join(WEBHOOK_EVENTS))] = EVENTS,
    as_json: JsonOption = False,
) -> None:
    """Send EVENTS of MODEL to URL, signed with SECRET (X-Lifelong-Signature: sha256=<hex HMAC of the body>)."""
    names = [name.strip() for name in events.split(",") if name.strip()]
    hook = client_of(ctx).add_webhook(model, url, names, secret)
    if as_json:
        return print_json(hook)
    typer.echo(f"{model}: webhook {hook['id']} sends {', '.join(hook['events'])} to {hook['url']}")


@webhooks.command("list")
@handles_errors
def list_(ctx: typer.Context, model: str, as_json: JsonOption = False) -> None:
    """The webhooks of MODEL (without their secrets)."""
    found = client_of(ctx).webhooks(model)
    if as_json:
        return print_json(found)
    print_table(model, ["id", "url", "events", "created"],
                [(h["id"], h["url"], ", ".join(h["events"]), h["created_at"]) for h in found])


@webhooks.command("remove")
@handles_errors
def remove(ctx: typer.Context, model: str, webhook_id: int) -> None:
    """Remove webhook WEBHOOK_ID of MODEL, with its delivery log: nothing more is sent to it."""
    client_of(ctx).delete_webhook(model, webhook_id)
    typer.echo(f"{model}: removed webhook {webhook_id}")


@webhooks.command("deliveries")
@handles_errors
def deliveries(
    ctx: typer.Context,
    model: str,
    webhook_id: int,
    state: Annotated[State | None, typer.Option(help="only deliveries in this state")] = None,
    limit: Annotated[int, typer.Option(help="at most this many (the server takes up to 1000)")] = 100,
    as_json: JsonOption = False,
) -> None:
    """The deliveries of webhook WEBHOOK_ID, newest first: event, state, attempts, last answer, next attempt."""
    found = client_of(ctx).webhook_deliveries(model, webhook_id, state=state, limit=limit)
    if as_json:
        return print_json(found)
    print_table(f"{model}: webhook {webhook_id}",
                ["delivery", "event", "state", "attempts", "last", "next attempt", "delivered"],
                [(d["id"], d["event"], d["state"], d["attempts"], d["last_error"] or d["last_status"],
                  d["next_attempt_at"], d["delivered_at"]) for d in found])
