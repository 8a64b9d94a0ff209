"""408 for a request body that stops arriving: a client may not hold a connection by announcing a body and
not sending it.

uvicorn has no timeout of its own for a body in progress: a client that announces 200 MB and sends a few
bytes keeps its connection, and whatever the route holds while it reads (a thread, a spooled file), for as
long as it likes. This ASGI middleware waits at most `timeout_s` for each next piece of the body, as
nginx's `client_body_timeout` does (between two reads, not for the whole body, so a large upload on a slow
but live link still succeeds), and answers 408 with `Connection: close` when it passes. Clients without a
valid key never get here: `AuthenticateFirst` answers them 401 before reading the body.
"""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyReadTimeout:
    def __init__(self, app: ASGIApp, timeout_s: float):
        self.app, self.timeout_s = app, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False

        async def timed() -> Message:
            nonlocal body_done
            if body_done:  # after the body, receive() waits for a disconnect, which may take any time
                return await receive()
            try:
                async with asyncio.timeout(self.timeout_s):  # no task of its own, unlike wait_for
                    message = await receive()
            except TimeoutError:
                # An HTTPException, which FastAPI lets through its body parsing and answers as is
                # (a TimeoutError is an OSError, which the app would answer 503).
                raise HTTPException(408, f"the request body stopped arriving: no data for {self.timeout_s:g} s"
                                    " (LIFELONG_BODY_READ_TIMEOUT_S)", headers={"Connection": "close"}) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed, send)
