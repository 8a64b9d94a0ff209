"""Aliases as the API offers them: list, resolve, move (production included), delete, history (of one alias
or of the whole model).

Moving an alias checks that the version exists and holds the model's row lock while it moves, as jobs
do when they promote (app/versions/service.py), so a person's move and a job's never interleave. The
moves themselves are written in app/aliases/moves.py, the one place they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.aliases.moves import PRODUCTION, Mover, alias_version, aliases_of, history, move_alias, remove_alias
from app.db.lookups import get_version, lock_model
from app.db.tables import Alias, AliasMove, Model
from app.errors import Conflict, Invalid, NotFound


@dataclass(frozen=True)
class AliasView:
    alias: str
    version: int
    updated_at: datetime | None


def list_aliases(*, session: Session, model: Model) -> list[AliasView]:
    updated = dict(session.execute(select(Alias.name, Alias.updated_at).where(Alias.model_id == model.id)).all())
    updated[PRODUCTION] = session.scalar(select(AliasMove.at).where(
        AliasMove.model_id == model.id, AliasMove.alias == PRODUCTION).order_by(AliasMove.id.desc()).limit(1))
    return [AliasView(name, version, updated.get(name)) for name, version in aliases_of(session=session,
                                                                                        model=model).items()]


def get_alias(*, session: Session, model: Model, alias: str) -> AliasView:
    for view in list_aliases(session=session, model=model):
        if view.alias == alias:
            return view
    _unknown(model, alias)


def resolve_alias(*, session: Session, model: Model, alias: str) -> int:
    """The version `alias` names; 404 when the model has no such alias."""
    version = alias_version(session=session, model=model, alias=alias)
    if version is None:
        _unknown(model, alias)
    return version


def resolve_version(*, session: Session, model: Model, version: int | None, alias: str | None,
                    version_field: str = "version", alias_field: str = "alias") -> int:
    """The version a request names by number or by alias (production when it names neither); 422 for both."""
    if version is not None and alias is not None:
        raise Invalid(f"give either {version_field!r} or {alias_field!r}, not both")
    if version is not None:
        return version
    return resolve_alias(session=session, model=model, alias=alias or PRODUCTION)


def set_alias(*, session: Session, model: Model, alias: str, version: int, by: Mover, reason: str | None) -> AliasView:
    """Point `alias` at an existing version (production: the model's head), recorded with who and why."""
    lock_model(session, model.id)
    session.refresh(model)
    get_version(session, model, version)
    move_alias(session=session, model=model, alias=alias, version=version, by=by, reason=reason)
    return get_alias(session=session, model=model, alias=alias)


def delete_alias(*, session: Session, model: Model, alias: str, by: Mover, reason: str | None = None) -> None:
    """Remove an alias other than production (which always names a version: move it instead)."""
    if alias == PRODUCTION:
        raise Conflict("the alias production cannot be deleted: it names the version predictions and new tasks "
                       "use; move it to another version instead")
    lock_model(session, model.id)
    if remove_alias(session=session, model=model, alias=alias, by=by, reason=reason) is None:
        _unknown(model, alias)


def alias_history(*, session: Session, model: Model, alias: str) -> list[AliasMove]:
    """Every move of `alias`, newest first; 404 for a name that never was an alias of the model."""
    moves = history(session=session, model=model, alias=alias)
    if not moves and alias_version(session=session, model=model, alias=alias) is None:
        _unknown(model, alias)
    return moves


def model_alias_history(*, session: Session, model: Model, alias: str | None = None, limit: int) -> list[AliasMove]:
    """The `limit` newest moves of every alias the model ever had (or of `alias` alone: an empty list when it
    never was one), deleted aliases included, newest first."""
    return history(session=session, model=model, alias=alias, limit=limit)


def _unknown(model: Model, alias: str) -> NoReturn:
    raise NotFound(f"model {model.name!r} has no alias {alias!r}")
