"""The one place an alias moves, and the history of its moves.

`production` is stored in `models.head` (so the compare-and-set of jobs, `PUT …/head` and old clients
keep working); every other alias is a row of `aliases`. Each move of either kind adds a row to
`alias_moves`: when, from which version to which, by which API key (its prefix) or job, and why. The
caller holds the model's row lock (`app.db.lookups.lock_model`), so moves of one model are serial.
This module reads and writes tables only: it knows nothing of versions' contents or of policies.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.db.tables import Alias, AliasMove, Model, Shadow, utcnow
from app.webhooks.events import emit_alias_moved

PRODUCTION = "production"
CANDIDATE = "candidate"


@dataclass(frozen=True)
class Mover:
    """Who moves an alias: an API key (its prefix), a job, or nobody known (a server without keys)."""

    key_prefix: str | None = None
    job_id: str | None = None


def aliases_of(*, session: Session, model: Model) -> dict[str, int]:
    """Every alias of the model and its version, production first, the rest by name."""
    others = session.execute(select(Alias.name, Alias.version).where(Alias.model_id == model.id).order_by(Alias.name))
    return {PRODUCTION: model.head, **{name: version for name, version in others}}


def aliases_by_version(*, session: Session, model: Model) -> dict[int, list[str]]:
    """The aliases naming each version that has any."""
    named: dict[int, list[str]] = {}
    for alias, version in aliases_of(session=session, model=model).items():
        named.setdefault(version, []).append(alias)
    return named


def alias_version(*, session: Session, model: Model, alias: str) -> int | None:
    if alias == PRODUCTION:
        return model.head
    return session.scalar(select(Alias.version).where(Alias.model_id == model.id, Alias.name == alias))


def record_move(*, session: Session, model_id: int, alias: str, old: int | None, new: int | None, by: Mover,
                reason: str | None) -> AliasMove:
    move = AliasMove(model_id=model_id, alias=alias, from_version=old, to_version=new, key_prefix=by.key_prefix,
                     job_id=by.job_id, reason=reason, at=utcnow())
    session.add(move)
    emit_alias_moved(session, move)
    if old != new:  # a shadow on this alias ends: what it compares is no longer what the alias names
        session.execute(delete(Shadow).where(Shadow.model_id == model_id, Shadow.alias == alias))
    return move


def move_alias(*, session: Session, model: Model, alias: str, version: int, by: Mover,
               reason: str | None) -> int | None:
    """Point `alias` at `version` (production: the model's head) and record the move; returns where it
    pointed before (None: it did not exist). A move to where it already points is recorded too: someone
    said so, and why."""
    if alias == PRODUCTION:
        old: int | None = model.head
        model.head = version
    else:
        row = session.scalar(select(Alias).where(Alias.model_id == model.id, Alias.name == alias))
        old = None if row is None else row.version
        if row is None:
            session.add(Alias(model_id=model.id, name=alias, version=version, updated_at=utcnow()))
        else:
            row.version, row.updated_at = version, utcnow()
    record_move(session=session, model_id=model.id, alias=alias, old=old, new=version, by=by, reason=reason)
    session.flush()
    return old


def remove_alias(*, session: Session, model: Model, alias: str, by: Mover, reason: str | None) -> int | None:
    """Delete an alias other than production and record it (to: None); None when it does not exist."""
    row = session.scalar(select(Alias).where(Alias.model_id == model.id, Alias.name == alias))
    if row is None:
        return None
    old = row.version
    session.delete(row)
    record_move(session=session, model_id=model.id, alias=alias, old=old, new=None, by=by, reason=reason)
    session.flush()
    return old


def history(*, session: Session, model: Model, alias: str | None = None, limit: int | None = None) -> list[AliasMove]:
    """The moves of one alias (`alias`) or of every alias of the model, deleted ones included, newest first;
    the `limit` newest when given."""
    query = select(AliasMove).where(AliasMove.model_id == model.id)
    if alias is not None:
        query = query.where(AliasMove.alias == alias)
    return list(session.scalars(query.order_by(AliasMove.id.desc()).limit(limit)))
