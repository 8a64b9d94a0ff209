"""`lifelong keys create|list|revoke`: manage API keys on the database of these settings.

Works with the service running or not: the API reads keys per request, so a new or revoked key
counts at once. `create` prints the token once; only its hash is kept.
"""

from __future__ import annotations

from typing import Annotated

import typer

from app.settings import get_settings

keys_cli = typer.Typer(add_completion=False, no_args_is_help=True, help="Create, list and revoke API keys.")


def _sessions():  # noqa: ANN202 - a sessionmaker, imported late to keep `lifelong --help` fast
    from app.db.engine import make_engine, make_session_factory
    from app.db.migrate import upgrade_database

    settings = get_settings()
    upgrade_database(settings)
    return make_session_factory(make_engine(settings))


@keys_cli.command("create")
def create(
    scope: Annotated[str, typer.Option(help="read (GET, predict), write (+ datasets, tasks, head, cancel), admin")],
    name: Annotated[str | None, typer.Option(help="a label to recognise the key by")] = None,
    models: Annotated[str | None, typer.Option(help="the models the key reaches, comma-separated (default: every "
                                                    "model)")] = None,
    model_prefix: Annotated[str | None, typer.Option(help="the key reaches the models whose names start with "
                                                          "this (with --models: those too)")] = None,
) -> None:
    """Create a key and print it (once: it cannot be shown again)."""
    from app.auth.keys import SCOPES, check_model_scope, create_key, model_scope_of

    if scope not in SCOPES:
        raise typer.BadParameter(f"scope must be one of {', '.join(SCOPES)}", param_hint="--scope")
    names = [part.strip() for part in models.split(",") if part.strip()] if models is not None else None
    try:
        check_model_scope(models=names, model_prefix=model_prefix)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--models/--model-prefix") from None
    try:
        with _sessions().begin() as session:
            created = create_key(session=session, scope=scope, name=name, models=names, model_prefix=model_prefix)
            key_id, reach = created.key.id, model_scope_of(created.key).describe()
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--name") from None
    typer.echo(created.token)
    typer.echo(f"key {key_id} ({scope}, {reach}) created; store it now, it is not shown again", err=True)


@keys_cli.command("list")
def list_() -> None:
    """List keys: id, prefix, scope, name, created, revoked, and the models each reaches."""
    from app.auth.keys import list_keys, model_scope_of

    with _sessions()() as session:
        for key in list_keys(session):
            revoked = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            typer.echo(f"{key.id}\tll_{key.prefix}_…\t{key.scope}\t{key.name or '-'}\t"
                       f"{key.created_at:%Y-%m-%d %H:%M}\t{revoked}\t{model_scope_of(key).describe()}")


@keys_cli.command("revoke")
def revoke(key_id: Annotated[int, typer.Argument(help="the key's id, from `lifelong keys list`")]) -> None:
    """Revoke a key: requests carrying it get 401 from now on."""
    from app.auth.keys import revoke_key
    from app.errors import ServiceError

    try:
        with _sessions().begin() as session:
            revoke_key(session=session, key_id=key_id)
    except ServiceError as error:
        typer.echo(error.detail, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"key {key_id} revoked")


def refuse_open_bind(host: str) -> None:
    """Exit with a clear message if an API with no key would listen beyond loopback."""
    from app.auth.keys import check_bind

    with _sessions()() as session:
        reason = check_bind(session=session, host=host, allow_open_network=get_settings().allow_open_network)
    if reason is not None:
        typer.echo(f"lifelong: {reason}", err=True)
        raise typer.Exit(2)
