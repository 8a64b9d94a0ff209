"""`MoverDep`: who moves an alias, as a FastAPI dependency.

Every route that moves an alias (the aliases' own, `PUT …/head`, creating a model, which points
production at version 0) records the caller in the alias history; they take the dependency from here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select

from app.aliases.moves import Mover
from app.db.tables import ApiKey
from app.deps import SessionDep


def moved_by(request: Request, session: SessionDep) -> Mover:
    """The caller as the alias history names it: its API key's prefix (None on a server without keys)."""
    key_id = getattr(request.state, "key_id", None)
    if key_id is None:
        return Mover()
    return Mover(key_prefix=session.scalar(select(ApiKey.prefix).where(ApiKey.id == key_id)))


MoverDep = Annotated[Mover, Depends(moved_by)]
