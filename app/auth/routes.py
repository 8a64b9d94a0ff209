"""HTTP routes of API keys (admin scope): create (the token is in this response only), list, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from app.auth import keys
from app.auth.deps import AdminScope
from app.auth.schemas import KeyIn, KeyOut, NewKeyOut
from app.deps import SessionDep

router = APIRouter(prefix="/v1/keys", tags=["keys"], dependencies=[AdminScope])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=NewKeyOut)
def create_key(body: KeyIn, session: SessionDep) -> NewKeyOut:
    created = keys.create_key(session, body.scope, body.name)
    session.commit()
    return NewKeyOut(**KeyOut.model_validate(created.key, from_attributes=True).model_dump(), key=created.token)


@router.get("", response_model=list[KeyOut])
def list_keys(session: SessionDep) -> list[KeyOut]:
    return [KeyOut.model_validate(k, from_attributes=True) for k in keys.list_keys(session)]


@router.delete("/{key_id}", response_model=KeyOut)
def revoke_key(key_id: int, session: SessionDep, request: Request) -> KeyOut:
    key = keys.revoke_key(session, key_id, by=getattr(request.state, "key_id", None))
    session.commit()
    return KeyOut.model_validate(key, from_attributes=True)
