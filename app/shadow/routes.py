"""HTTP routes of a model's shadow: set it (PUT), read what it compared (GET), end it (DELETE)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.auth.deps import ReadScope, WriteScope
from app.db.lookups import get_model
from app.deps import SessionDep
from app.shadow import service
from app.shadow.schemas import ShadowIn, ShadowOut

router = APIRouter(prefix="/v1/models/{name}/shadow", tags=["shadow"], dependencies=[ReadScope])


@router.put("", response_model=ShadowOut, dependencies=[WriteScope])
def set_shadow(name: str, body: ShadowIn, session: SessionDep, request: Request) -> ShadowOut:
    """Replay `fraction` of production's predictions on the version `alias` names now, off the request path;
    counts start at zero. It ends when the alias moves or is deleted, or on DELETE."""
    model = get_model(session, name)
    row = service.set_shadow(session=session, model=model, alias=body.alias, fraction=body.fraction)
    session.commit()
    request.app.state.shadows.refresh()  # this process samples from now on; others within a second
    return service.shadow_out(model=model, row=row)


@router.get("", response_model=ShadowOut)
def get_shadow(name: str, session: SessionDep) -> ShadowOut:
    """Rows compared, agreement overall and per task, the most frequent disagreements, rows dropped."""
    model = get_model(session, name)
    return service.shadow_out(model=model, row=service.get_shadow(session=session, model=model))


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, dependencies=[WriteScope])
def end_shadow(name: str, session: SessionDep, request: Request) -> Response:
    service.end_shadow(session=session, model=get_model(session, name))
    session.commit()
    request.app.state.shadows.refresh()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
