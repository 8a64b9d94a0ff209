"""A webhook receiver for the walk-throughs: checks each delivery's signature, drops repeats, and appends
the verified events to a file as JSON lines (one `{"event", "data", ...}` body per line).

    python scripts/webhook_receiver.py --port 9011 --secret "loop secret" --out loop/events.jsonl

A delivery whose signature does not verify is answered 401 and not written.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path


def serve(port: int, secret: bytes, out: Path) -> None:
    seen: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, self.headers.get("X-Lifelong-Signature", "")):
                self.send_response(401)
                self.end_headers()
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
