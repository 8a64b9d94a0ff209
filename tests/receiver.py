"""A real webhook receiver for the tests: an HTTP server in a thread of the test process, on a port of
its own, that records every request (time, path, headers, raw body) and answers with a status the test
chooses per request. It can be started on a port chosen in advance, so a hook can point at a receiver
that is down (the port closed) and that comes up later."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from scripts.cluster import free_port


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic() when it arrived
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def delivery(self) -> str:
        return self.headers["x-lifelong-delivery"]

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        """Whether X-Lifelong-Signature is the HMAC-SHA256 of the raw body under `secret`, computed here."""
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("x-lifelong-signature", ""))

    def timestamp_signed_with(self, secret: str) -> int | None:
        """The `t` of X-Lifelong-Timestamp-Signature (t=…,v1=…) when v1 is the HMAC-SHA256 of "<t>.<body>" under
        `secret`, computed here; else None."""
        header = self.headers.get("x-lifelong-timestamp-signature", "")
        fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        signed = fields.get("t", "").encode() + b"." + self.body
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        return int(fields["t"]) if hmac.compare_digest(expected, fields.get("v1", "")) else None


class Receiver:
    """`status(request_number, path)` decides each answer (default 200); `received` lists every request."""

    def __init__(self, port: int | None = None, status: Callable[[int, str], int] | None = None):
        self.port = port or free_port()
        self.status = status or (lambda _n, _path: 200)
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.received.append(Received(time.monotonic(), self.path,
                                                      {k.lower(): v for k, v in self.headers.items()}, body))
                    number = len(receiver.received)
                self.send_response(receiver.status(number, self.path))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def requests(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if path is None or r.path == path]

    def deliveries(self, path: str | None = None) -> dict[str, list[Received]]:
        """The requests of each delivery id, in the order they came."""
        by_id: dict[str, list[Received]] = {}
        for request in self.requests(path):
            by_id.setdefault(request.delivery, []).append(request)
        return by_id
