"""Authentication before the body: a request to /v1 without a valid key is answered 401 at once.

FastAPI reads and parses a request body before it runs a route's dependencies, so with the key checked
only in a dependency, an unauthenticated client could make the API read and parse a 100 MB body (and
hold a connection open with a body announced but never sent) before hearing 401. This middleware looks
at the Authorization header first and answers 401 without reading a byte of the body (and closes the
connection, since the body is left unread). A caller it lets through has its scope recorded in the
request's state, which the scope dependencies (403 for too small a scope) then use without a second
lookup. A path naming a model the key is not scoped to (`/v1/models/{name}…`, app/auth/scoping.py) is
answered 404 here too, as a model that does not exist, before any route; a small body is read (and
dropped) first, since closing a connection with bytes left unread makes the kernel reset it, which can
destroy the answer before the client reads it (a body past DRAIN_BYTES is not waited for).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.deps import UNAUTHORIZED, identify
from app.auth.scoping import model_in_path, not_found
from app.http_errors import send_error


class AuthenticateFirst:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        caller = await identify(scope["app"].state, authorization)
        if caller is None:
            await send_error(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
            return
        if not caller.models.every_model:
            name = model_in_path(scope["path"])
            if name is not None and not caller.models.reaches(name):
                await refuse_out_of_scope(scope, receive, send, name)
                return
        state = scope.setdefault("state", {})
        state["caller"], state["scope"], state["key_id"] = caller, caller.scope, caller.key_id
        await self.app(scope, receive, send)



DRAIN_BYTES = 1 << 20


async def refuse_out_of_scope(scope: Scope, receive: Receive, send: Send, name: str) -> None:
    """404, the words of a model that does not exist, after reading up to DRAIN_BYTES of the body, each piece
    within LIFELONG_BODY_READ_TIMEOUT_S."""
    timeout_s, drained, more = scope["app"].state.settings.body_read_timeout_s, 0, True
    while more and drained <= DRAIN_BYTES:
        try:
            async with asyncio.timeout(timeout_s):
                message = await receive()
        except TimeoutError:
            break
        if message["type"] != "http.request":
            return  # the client went
        drained += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send_error(send, 404, not_found(name))
