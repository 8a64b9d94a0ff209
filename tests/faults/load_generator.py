"""A bounded load on one URL from its own process: `clients` connections, each sending GET requests
back to back for `seconds` (with `--polite`, after a 503 only once its Retry-After has passed), then a
JSON summary on stdout (status counts, latencies of the answered ones, whether every 503 carried
Retry-After).

Its own process, so that the load's client work does not slow the test's health prober (one GIL each).
Loopback only: the URL must be 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from urllib.parse import urlencode, urlsplit


async def one_client(host: str, port: int, request: bytes, until: float, statuses: Counter[str],
                     latencies: dict[str, list[float]], retry_after: Counter[str], polite: bool) -> None:
    """One keep-alive connection, requests back to back. Plain asyncio streams: an HTTP client library's
    own work per request, times 200 connections, would make the load generator the bottleneck."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < until:
            started = time.monotonic()
            writer.write(request)
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
            length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
            await reader.readexactly(length)
            status = head.split(" ", 2)[1]
            statuses[status] += 1
            latencies.setdefault(status, []).append(time.monotonic() - started)
            if status == "503":
                retry_after["with" if "\r\nretry-after:" in head else "without"] += 1
                if polite:  # a client that does as told: back off for the seconds Retry-After says
                    await asyncio.sleep(float(head.split("\r\nretry-after:", 1)[1].split("\r\n", 1)[0]))
    except (OSError, asyncio.IncompleteReadError) as error:
        statuses[type(error).__name__] += 1
    finally:
        writer.close()


async def run(url: str, params: dict[str, str], clients: int, seconds: float, polite: bool) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1" or parts.port is None:
        raise SystemExit("the load generator sends to loopback only (http://127.0.0.1:PORT/...)")
    target = f"{parts.path}?{urlencode(params)}" if params else parts.path
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{parts.port}\r\n\r\n".encode()
    statuses: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {}
    retry_after: Counter[str] = Counter()
    until = time.monotonic() + seconds
    await asyncio.gather(*(one_client(parts.hostname, parts.port, request, until, statuses, latencies, retry_after,
                                      polite)
                           for _ in range(clients)))
    return {"statuses": dict(statuses), "latencies_s": latencies, "retry_after": dict(retry_after)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--params", default="{}", help="query parameters, as a JSON object")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--polite", action="store_true", help="after a 503, wait as long as its Retry-After says")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.url, json.loads(args.params), args.clients, args.seconds, args.polite))))


if __name__ == "__main__":
    main()
