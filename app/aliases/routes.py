"""HTTP routes of aliases: list, move (production included), delete, each alias's history, and the model's.

The model-wide history is `…/alias-history`, not `…/aliases/history`: "history" is a valid alias name, so
`GET …/aliases/history` already means "the alias named history" (docs/choices.md).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from app.aliases import service
from app.aliases.deps import MoverDep
from app.aliases.schemas import AliasIn, AliasMoveOut, AliasOut
from app.auth.deps import ReadScope, WriteScope
from app.db.lookups import get_model
from app.deps import SessionDep
from app.names import NAME_PATTERN

router = APIRouter(prefix="/v1/models/{name}", tags=["aliases"], dependencies=[ReadScope])

NAME_RULE = "lower-case letters, digits, '_' and '-', up to 64"
AliasName = Annotated[str, Path(pattern=NAME_PATTERN, description=NAME_RULE)]
AliasFilter = Annotated[str | None, Query(pattern=NAME_PATTERN, description=f"only this alias's moves: {NAME_RULE}")]


@router.get("/aliases", response_model=list[AliasOut])
def list_aliases(name: str, session: SessionDep) -> list[AliasOut]:
    """Every alias of the model and the version it names, production first."""
    return [AliasOut(alias=a.alias, version=a.version, updated_at=a.updated_at)
            for a in service.list_aliases(session=session, model=get_model(session, name))]


@router.get("/aliases/{alias}", response_model=AliasOut)
def get_alias(name: str, alias: AliasName, session: SessionDep) -> AliasOut:
    view = service.get_alias(session=session, model=get_model(session, name), alias=alias)
    return AliasOut(alias=view.alias, version=view.version, updated_at=view.updated_at)


@router.put("/aliases/{alias}", response_model=AliasOut, dependencies=[WriteScope])
def set_alias(name: str, alias: AliasName, body: AliasIn, session: SessionDep, by: MoverDep) -> AliasOut:
    """Point the alias at a version (creating it if new); moving `production` promotes (or rolls back)."""
    view = service.set_alias(session=session, model=get_model(session, name), alias=alias, version=body.version, by=by,
                             reason=body.reason)
    session.commit()
    return AliasOut(alias=view.alias, version=view.version, updated_at=view.updated_at)


@router.delete("/aliases/{alias}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[WriteScope])
def delete_alias(name: str, alias: AliasName, session: SessionDep, by: MoverDep) -> Response:
    """Remove an alias (its history stays); production cannot be removed (409)."""
    service.delete_alias(session=session, model=get_model(session, name), alias=alias, by=by)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/aliases/{alias}/history", response_model=list[AliasMoveOut])
def alias_history(name: str, alias: AliasName, session: SessionDep) -> list[AliasMoveOut]:
    """Every move of the alias, newest first: when, from, to, by which key or job, and why."""
    return [AliasMoveOut.of(move) for move in service.alias_history(session=session, model=get_model(session, name),
                                                                    alias=alias)]


@router.get("/alias-history", response_model=list[AliasMoveOut])
def model_alias_history(name: str, session: SessionDep, alias: AliasFilter = None,
                        limit: Annotated[int, Query(ge=1, le=1000, description="the newest moves, at most")] = 100,
                        ) -> list[AliasMoveOut]:
    """Every move of every alias the model ever had, deleted ones included, newest first: an alias deleted
    and never recreated is found here (its last move has `to` null), not in `GET …/aliases`."""
    moves = service.model_alias_history(session=session, model=get_model(session, name), alias=alias, limit=limit)
    return [AliasMoveOut.of(move) for move in moves]
