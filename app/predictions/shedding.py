"""Shed a prediction before anything else while the gate is full: the cheapest 503 the API can send.

Under a storm of clients that ignore Retry-After, every refused request still costs the event loop its
parsing, middleware, routing and error handling; at a few hundred microseconds each, 200 such clients
keep the loop busy enough that /healthz, which answers on the loop, waits behind them for hundreds of
milliseconds. Refused here, as the outermost ASGI layer, a prediction costs a fraction of that. So a
prediction is refused 503 before its key is checked while the API sheds: the answer says nothing about
any model, and is the same for every caller. The refusal is still counted in /metrics under its route.
A request whose body is left unread is answered with `Connection: close`, as the other refusals before a
route are.
"""

from __future__ import annotations

import json
import re
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from app.metrics import count_request
from app.predictions.admission import PredictionGate

PREDICTION_PATH = re.compile(r"/v1/models/[^/]+/predict")
ROUTE = "/v1/models/{name}/predict"


class ShedWhenFull:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate: PredictionGate | None = getattr(scope["app"].state, "gate", None) if scope["type"] == "http" else None
        if gate is None or not gate.full() or not PREDICTION_PATH.fullmatch(scope["path"]):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        refusal = gate.refusal()
        body = json.dumps({"detail": refusal.detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   *((name.lower().encode(), value.encode()) for name, value in refusal.headers.items())]
        if scope["method"] != "GET":
            headers.append((b"connection", b"close"))  # its body is left unread
        await send({"type": "http.response.start", "status": refusal.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        count_request(scope["method"], ROUTE, refusal.status_code, time.perf_counter() - started)
