"""Authentication before the body: a request to /v1 without a valid key is answered 401 at once.

FastAPI reads and parses a request body before it runs a route's dependencies, so with the key checked
only in a dependency, an unauthenticated client could make the API read and parse a 100 MB body (and
hold a connection open with a body announced but never sent) before hearing 401. This middleware looks
at the Authorization header first and answers 401 without reading a byte of the body (and closes the
connection, since the body is left unread). A caller it lets through has its scope recorded in the
request's state, which the scope dependencies (403 for too small a scope) then use without a second
lookup.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.deps import UNAUTHORIZED, identify
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
        state = scope.setdefault("state", {})
        state["scope"], state["key_id"] = caller.scope, caller.key_id
        await self.app(scope, receive, send)

