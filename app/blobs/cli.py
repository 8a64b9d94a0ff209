"""`lifelong blobs gc`: collect the blobs that nothing names any more (app/blobs/collect.py).

Safe with the service running (a blob younger than --min-age-hours is kept, whatever it is, and a
blob goes for good only after two runs found it unreferenced), and against any store the settings
name: the local directory or LIFELONG_BLOB_URL. Run it from cron, daily say.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import timedelta
from typing import Annotated

import typer

from app.settings import get_settings

blobs_cli = typer.Typer(add_completion=False, no_args_is_help=True, help="Look after the blob store.")


@blobs_cli.command("gc")
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would be deleted, delete nothing")] = False,
    min_age_hours: Annotated[float, typer.Option(
        min=1.0, help="keep any blob written, or in the trash, more recently than this: a job or upload may be"
        " about to name it")] = 24.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Collect the blobs no version or dataset names (left by cancelled or conflicting jobs, deleted models):
    to the trash first, deleted for good by a later run once still unreferenced after --min-age-hours.
    The blobs of deleted datasets are deleted at once (in place and in the trash) unless another dataset
    names the same blob."""
    from app.blobs.collect import CollectorBusy, collect_blobs, exclusive_collection
    from app.blobs.purge import Purge, purge_deleted_blobs
    from app.db.engine import make_engine, make_session_factory
    from app.db.migrate import upgrade_database
    from app.store import open_blob_store

    settings = get_settings()
    upgrade_database(settings)
    engine = make_engine(settings)
    sessions, store = make_session_factory(engine), open_blob_store(settings)
    purge = Purge()
    try:
        with exclusive_collection(settings, engine):
            if not dry_run:  # deleted datasets' blobs go at once, the trash's waiting period aside
                with sessions() as session:
                    purge = purge_deleted_blobs(session, store)
            result = collect_blobs(sessions, store, min_age=timedelta(hours=min_age_hours), dry_run=dry_run)
    except CollectorBusy as busy:
        typer.echo(f"lifelong blobs gc: {busy}; nothing done", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps({"dry_run": dry_run, **asdict(result), "dataset_blobs_purged": len(purge.purged),
                               "deleted_datasets_sharing_a_blob": purge.shared}))
        return
    if purge.purged:
        typer.echo(f"deleted datasets: purged {len(purge.purged)} blobs.")
    would = "would " if dry_run else ""
    typer.echo(
        f"{result.blobs} blobs: {result.referenced} in use, {result.too_recent} younger than {min_age_hours:g} h"
        f" (kept); {would}move {result.trashed} unreferenced to the trash ({result.trashed_bytes / 2**20:.1f} MiB)."
        f"\ntrash: {would}delete {result.deleted} unreferenced for over {min_age_hours:g} h"
        f" ({result.deleted_bytes / 2**20:.1f} MiB); {would}bring back {result.restored} named again."
    )
