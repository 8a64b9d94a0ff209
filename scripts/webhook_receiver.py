"""A webhook receiver for the walk-throughs: checks each delivery's timestamped signature and its age, drops
repeats, and appends the verified events to a file as JSON lines (one `{"event", "data", ...}` body per line).

    python scripts/webhook_receiver.py --port 9011 --secret "loop secret" --out loop/events.jsonl

`X-Lifelong-Timestamp-Signature: t=<unix time>,v1=<hex>` must hold the HMAC-SHA256 of "<t>.<raw body>" under
the hook's secret, and `t` must be within 5 minutes of this machine's clock (the replay window): a delivery
that fails either is answered 401 and not written. A retry is signed anew, so only a replay is too old.
Standalone on purpose (no import of the service): it is the receiver docs/webhooks.md shows.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

REPLAY_WINDOW_S = 300


def verify(secret: bytes, body: bytes, header: str, now: float, window_s: float = REPLAY_WINDOW_S) -> str | None:
    """None if `header` (t=…,v1=…) signs `body` under `secret` at a time within `window_s` of `now`; else why not."""
    fields = dict(part.strip().split("=", 1) for part in header.split(",") if "=" in part)
    timestamp, signature = fields.get("t", ""), fields.get("v1", "")
    if not timestamp.isdigit() or not signature:
        return "no t=…,v1=… signature"
    expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "the signature does not match"
    if abs(now - int(timestamp)) > window_s:
        return f"signed {now - int(timestamp):.0f} s ago, outside the {window_s:.0f} s replay window"
    return None


def serve(port: int, secret: bytes, out: Path) -> None:
    seen: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            refused = verify(secret, body, self.headers.get("X-Lifelong-Timestamp-Signature", ""), time.time())
            if refused is not None:
                self.send_response(401)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(refused.encode())
                return
            delivery = self.headers.get("X-Lifelong-Delivery", "")
            if delivery not in seen:  # at least once: a retry of a delivery already written is dropped
                seen.add(delivery)
                with out.open("a") as events:
                    events.write(json.dumps(json.loads(body)) + "\n")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:  # quiet: the events file is the record
            pass

    out.parent.mkdir(parents=True, exist_ok=True)
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9011, help="port on 127.0.0.1 [9011]")
    parser.add_argument("--secret", required=True, help="the hook's secret")
    parser.add_argument("--out", type=Path, default=Path("events.jsonl"), help="file the events go to")
    args = parser.parse_args()
    serve(args.port, args.secret.encode(), args.out)


if __name__ == "__main__":
    main()
