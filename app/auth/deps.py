"""The scope a route needs, as FastAPI dependencies: `ReadScope`, `WriteScope`, `AdminScope`.

Keys are read from the database on every request (one indexed lookup), so a key created or revoked
with the CLI counts at once, with no restart and no cache to go stale. 401 carries
`WWW-Authenticate: Bearer` (RFC 6750); 403 says which scope was needed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth.keys import allows, any_key_exists, find_key

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
# Declares the bearer scheme in the OpenAPI document (so /docs has an "Authorize" button and client
# generators send the header); the header itself is checked below, with our own 401 and 403.
_BEARER = HTTPBearer(auto_error=False, description="an API key: `lifelong keys create --scope read|write|admin`")
BearerHeader = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


def require_scope(needed: str) -> object:
    def check(request: Request, _: BearerHeader) -> None:
        granted = getattr(request.state, "scope", None)
        if granted is None:
            granted = _authenticate(request)
            request.state.scope = granted
        if granted != "open" and not allows(granted, needed):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs a key with scope {needed!r}; "
                                f"this key has scope {granted!r}")

    return Depends(check)


def _authenticate(request: Request) -> str:
    """The caller's scope, or "open" when no key was ever created; raises 401 otherwise."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    with request.app.state.read_sessions() as session:
        if scheme.lower() == "bearer" and token.strip():
            key = find_key(session, token.strip())
            if key is not None:
                request.state.key_id = key.id
                return key.scope
        if not any_key_exists(session):
            return "open"
    detail = "a valid API key is needed: send Authorization: Bearer <key>"
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers=_CHALLENGE)


ReadScope = require_scope("read")
WriteScope = require_scope("write")
AdminScope = require_scope("admin")
