"""/healthz and /readyz on a port of their own, answered by a small process beside the API.

Under a storm of requests the API's one event loop serves a few hundred of them per cycle, and its
prediction threads hold the interpreter's lock between torch calls, so a probe answered inside the API
process waits its turn (p99 about 200 ms with 200 clients on 2 cores, on its port or a thread's). A
load balancer's probe must not: past its timeout it takes a busy but healthy instance out of service,
which moves the storm to the next. `LIFELONG_HEALTH_PORT` starts this listener, a separate process the
operating system wakes as soon as a probe arrives:

- /healthz: 200 while the API's event loop has turned within `LIFELONG_HEALTH_STALE_S` (the API
  writes a heartbeat every half second), 503 once it has stopped turning or the API has exited;
- /readyz: the same database and broker checks as the API's own /readyz, over its own connections.

Every uvicorn worker process starts one, all bound to the same port (SO_REUSEPORT); each answers for
its own API process and exits when that process does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.sharedctypes import Synchronized

from app.settings import Settings

log = logging.getLogger(__name__)

Probe = Callable[[], tuple[int, dict[str, str]]]
HEARTBEAT_S = 0.5


class ProbeServer(ThreadingHTTPServer):
    """A threaded HTTP server that answers GET for the paths in `probes` and 404 for the rest."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], probes: dict[str, Probe]) -> None:
        self.probes = probes
        super().__init__(address, _ProbeHandler)

    def server_bind(self) -> None:
        if hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class _ProbeHandler(BaseHTTPRequestHandler):
    server: ProbeServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        probe = self.server.probes.get(self.path.split("?", 1)[0])
        if probe is None:
            status, body = 404, {"detail": f"no probe at {self.path}; this port answers /healthz and /readyz"}
        else:
            status, body = probe()
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        """Probes every few seconds would fill the log; failures are logged by the probes themselves."""


class HealthListener:
    """Started and stopped with the API (its lifespan); does nothing when no health port is set."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._process: multiprocessing.process.BaseProcess | None = None
        self._beating: asyncio.Task[None] | None = None

    def start(self) -> None:
        """From the running event loop, whose turning the heartbeat reports."""
        if self._settings.health_port is None:
            return
        spawn = multiprocessing.get_context("spawn")  # no fork of a process holding torch's threads
        heartbeat: Synchronized[float] = spawn.Value("d", time.time(), lock=False)
        self._process = spawn.Process(target=serve_probes, name="lifelong-health", daemon=True,
                                      args=(self._settings, os.getpid(), heartbeat))
        self._process.start()
        self._beating = asyncio.get_running_loop().create_task(self._beat(heartbeat))

    @staticmethod
    async def _beat(heartbeat: Synchronized[float]) -> None:
        while True:
            heartbeat.value = time.time()
            await asyncio.sleep(HEARTBEAT_S)

    def stop(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
        if self._process is not None:
            self._process.terminate()
            self._process.join(timeout=10)
            self._process = None


def serve_probes(settings: Settings, api_pid: int, heartbeat: Synchronized[float]) -> None:
    """The listener process: serves until its API process has gone."""
    from app.db.engine import make_engine
    from app.health import HEALTHY, readiness
    from app.jobs.celery_app import make_celery

    engine, celery = make_engine(settings), make_celery(settings)

    def alive() -> bool:
        return os.getppid() == api_pid

    def liveness() -> tuple[int, dict[str, str]]:
        age = time.time() - heartbeat.value
        if alive() and age <= settings.health_stale_s:
            return 200, HEALTHY
        log.warning("healthz: the API's event loop last turned %.1f s ago", age)
        return 503, {"status": f"the API's event loop has not turned for {age:.0f} s"}

    probes: dict[str, Probe] = {"/healthz": liveness, "/readyz": lambda: readiness(engine, settings, celery)}
    server = ProbeServer((settings.host, settings.health_port or 0), probes)
    watch = threading.Thread(target=_shut_down_when, args=(server, lambda: not alive()), daemon=True)
    watch.start()
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()


def _shut_down_when(server: ProbeServer, gone: Callable[[], bool]) -> None:
    """A SIGKILLed API cannot stop its listener: the listener notices its parent is gone and stops."""
    while not gone():
        time.sleep(HEARTBEAT_S)
    server.shutdown()
