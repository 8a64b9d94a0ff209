"""HTTP routes of API keys (admin scope, on a key that reaches every model: a key scoped to models could
otherwise make itself one that is not): create (the token is in this response only), list, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from app.auth import keys
from app.auth.deps import AdminScope, require_every_model
from app.auth.schemas import KeyIn, KeyOut, NewKeyOut
from app.deps import SessionDep

router = APIRouter(prefix="/v1/keys", tags=["keys"], dependencies=[AdminScope, require_every_model("managing keys")])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=NewKeyOut)
def create_key(body: KeyIn, session: SessionDep) -> NewKeyOut:
    created = keys.create_key(session=session, scope=body.scope, name=body.name, models=body.models,
                              model_prefix=body.model_prefix)
    session.commit()
    return NewKeyOut(**KeyOut.model_validate(created.key, from_attributes=True).model_dump(), key=created.token)


@router.get("", response_model=list[KeyOut])
def list_keys(session: SessionDep) -> list[KeyOut]:
    return [KeyOut.model_validate(k, from_attributes=True) for k in keys.list_keys(session)]


@router.delete("/{key_id}", response_model=KeyOut)
def revoke_key(key_id: int, session: SessionDep, request: Request) -> KeyOut:
    key = keys.revoke_key(session=session, key_id=key_id, by=getattr(request.state, "key_id", None))
    session.commit()
    return KeyOut.model_validate(key, from_attributes=True)
