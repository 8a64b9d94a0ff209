"""The scope a route needs, as FastAPI dependencies: `ReadScope`, `WriteScope`, `AdminScope`.

A key that passed is kept for LIFELONG_AUTH_CACHE_S seconds (app/timed_cache.py): reading it again on
every request, in the thread pool, cost a 1-row prediction more than its forward pass. A refusal is never
kept, so a key created with the CLI works at once; one revoked with the CLI is refused within that
lifetime, and at once when revoked through this API process. 401 carries `WWW-Authenticate: Bearer`
(RFC 6750); 403 says which scope was needed. `ModelScopeDep` and `EveryModel` are the model scope's
dependencies (app/auth/scoping.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from app.auth.keys import allows, any_key_exists, find_key, model_scope_of
from app.auth.scoping import EVERY_MODEL, ModelScope
from app.timed_cache import TimedCache

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
# Declares the bearer scheme in the OpenAPI document (so /docs has an "Authorize" button and client
# generators send the header); the header itself is checked below, with our own 401 and 403.
_BEARER = HTTPBearer(auto_error=False, description="an API key: `lifelong keys create --scope read|write|admin`")
BearerHeader = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


def require_scope(needed: str) -> object:
    async def check(request: Request, _: BearerHeader) -> None:  # async: no thread-pool hop (app/deps.py)
        granted = (await _caller(request)).scope
        if granted != "open" and not allows(granted=granted, needed=needed):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs a key with scope {needed!r}; "
                                f"this key has scope {granted!r}")

    # Every key has the read scope: only a larger scope refuses one. app/http_errors.py reads the mark to
    # declare the 403 in the OpenAPI without importing these dependencies.
    check.answers_403 = needed != "read"  # type: ignore[attr-defined]
    return Depends(check)


UNAUTHORIZED = "a valid API key is needed: send Authorization: Bearer <key>"


@dataclass(frozen=True)
class Caller:
    scope: str  # read | write | admin, or "open" when no key was ever created
    key_id: int | None = None
    models: ModelScope = EVERY_MODEL


def identify_caller(engine: Engine, authorization: str) -> Caller | None:
    """Who sends `authorization`; None when a key is needed and this is none (missing, wrong, revoked)."""
    scheme, _, token = authorization.partition(" ")
    with engine.connect() as connection:
        if scheme.lower() == "bearer" and token.strip():
            key = find_key(connection=connection, token=token.strip())
            if key is not None:
                return Caller(key.scope, key.id, model_scope_of(key))
        if not any_key_exists(connection):
            return Caller("open")
    return None


async def identify(state: State, authorization: str) -> Caller | None:
    """`identify_caller` through the app's key cache, keyed by the header's sha256 (never the token): a
    hit answers on the event loop, a miss reads the database in the thread pool."""
    cache: TimedCache = state.key_cache
    digest = hashlib.sha256(authorization.encode("latin-1")).digest()
    caller = cache.get(digest)
    if caller is None:
        read_in = cache.generation
        caller = await run_in_threadpool(identify_caller, state.reader_engine, authorization)
        if caller is not None:
            cache.put(digest, caller, read_in=read_in)
    return caller


async def _caller(request: Request) -> Caller:
    """Who calls: found by the AuthenticateFirst middleware before the body was read (every /v1 path), or
    here (/metrics); 401 when a key is needed and this is none."""
    caller = getattr(request.state, "caller", None)
    if caller is None:
        caller = await identify(request.app.state, request.headers.get("authorization", ""))
        if caller is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED, headers=_CHALLENGE)
        request.state.caller, request.state.scope, request.state.key_id = caller, caller.scope, caller.key_id
    return caller


async def model_scope(request: Request, _: BearerHeader) -> ModelScope:
    return (await _caller(request)).models


# The models the caller's key reaches: routes that list models (or their jobs) filter with it, and
# creating a model checks the new name against it.
ModelScopeDep = Annotated[ModelScope, Depends(model_scope)]


def require_every_model(what: str) -> object:
    """403 for a key scoped to models on an operation about every model (`what` says which)."""

    async def check(scope: ModelScopeDep) -> None:
        if not scope.every_model:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"{what} needs a key that reaches every model; this "
                                f"key reaches {scope.describe()}")

    check.answers_403 = True  # type: ignore[attr-defined]  # app/http_errors.py declares its 403
    return Depends(check)


ReadScope = require_scope("read")
# What ReadScope declares in the OpenAPI document, for a route that does without it: the AuthenticateFirst
# middleware checked the key before any /v1 route runs, and every key has the read scope, so on the
# busiest route (predictions) the dependency would cost FastAPI's solving and decide nothing.
READ_SCOPE_OPENAPI = {"security": [{_BEARER.scheme_name: []}]}
WriteScope = require_scope("write")
AdminScope = require_scope("admin")
