"""The health port of a real API process: it answers beside the API, and goes when the API is killed."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from scripts.cluster import free_port
from tests.conftest import Service, wait_for


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def closed(url: str) -> bool:
    """Nothing listens any more (a 503 from an orphaned listener would not do)."""
    try:
        httpx.get(url, timeout=1.0)
    except httpx.ConnectError:
        return True
    except httpx.TransportError:  # closing while it answered: ask again
        return False
    return False


def test_the_health_port_answers_and_closes_when_the_api_is_killed(tmp_path: Path) -> None:
    health_port = free_port()
    running = Service(var_dir=tmp_path / "var", port=free_port(), env={"LIFELONG_HEALTH_PORT": str(health_port)})
    running.var_dir.mkdir(parents=True)
    running.start("api", "api", "--port", str(running.port))
    try:
        running.wait_healthy()
        url = f"http://127.0.0.1:{health_port}"
        wait_for(lambda: answers(url + "/healthz"), deadline_s=60, what="the health port to answer")
        readiness = httpx.get(url + "/readyz").json()
        assert readiness == httpx.get(running.url + "/readyz").json()  # the same checks, the same answer
        running.stop(signal.SIGKILL)  # no lifespan shutdown: the listener must notice alone
        wait_for(lambda: closed(url + "/healthz"), deadline_s=30, what="the health port to close")
    finally:
        running.stop()
