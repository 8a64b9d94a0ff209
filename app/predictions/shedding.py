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

import re
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from app.http_errors import send_error
from app.metrics import count_request
from app.predictions.admission import PredictionGate

PREDICTION_PATH = re.compile(r"/v1/models/[^/]+/predict")
ROUTE = "/v1/models/{name}/predict"


class ShedWhenFull:
    def __init__(self, app: ASGIApp, gate: PredictionGate):
        self.app, self.gate = app, gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.gate.full() or not PREDICTION_PATH.fullmatch(scope["path"]):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        refusal = self.gate.refusal()
        headers = [(name.lower().encode(), value.encode()) for name, value in refusal.headers.items()]
        # A GET has no body to leave unread: its connection is kept for the client's next request.
        await send_error(send, refusal.status_code, refusal.detail, headers, close=scope["method"] != "GET")
        count_request(scope["method"], ROUTE, refusal.status_code, time.perf_counter() - started)
