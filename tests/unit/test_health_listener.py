"""The health listener: a process beside the API answering /healthz and /readyz, which says unhealthy
once the API's event loop stops turning."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx

from app.db.migrate import upgrade_database
from app.health_listener import HealthListener, ProbeServer
from app.settings import Settings
from scripts.cluster import free_port


def test_the_probe_server_answers_its_paths_and_404_elsewhere() -> None:
    ready = {"ready": False}
    server = ProbeServer(("127.0.0.1", 0), {
        "/readyz": lambda: (200, {"status": "ready"}) if ready["ready"] else (503, {"status": "not ready"})})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert httpx.get(url + "/readyz").status_code == 503
        ready["ready"] = True
        answer = httpx.get(url + "/readyz?verbose=1")
        assert (answer.status_code, answer.json()) == (200, {"status": "ready"})
        missing = httpx.get(url + "/v1/models")
        assert missing.status_code == 404 and "/readyz" in missing.json()["detail"]
    finally:
        server.shutdown()
        server.server_close()


def get_when_up(url: str, timeout_s: float = 60) -> httpx.Response:
    """The listener's process is spawned: it answers once it has imported what it needs."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_listener_reports_readiness_and_a_stuck_event_loop(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var", health_port=free_port(), health_stale_s=1.0)
    upgrade_database(settings)
    (settings.broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{settings.health_port}"
    listener = HealthListener(settings)

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        listener.start()
        healthy = await asyncio.to_thread(get_when_up, url + "/healthz")
        ready = await asyncio.to_thread(httpx.get, url + "/readyz")
        answers: list[httpx.Response] = []
        asking = threading.Thread(target=lambda: (time.sleep(2.0), answers.append(httpx.get(url + "/healthz"))))
        asking.start()
        time.sleep(2.5)  # the event loop is stuck: no heartbeat for longer than health_stale_s
        asking.join()
        return healthy, ready, answers[0]

    try:
        healthy, ready, stuck = asyncio.run(scenario())
    finally:
        listener.stop()
    assert (healthy.status_code, healthy.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "database": "ok", "broker": "ok"}
    assert stuck.status_code == 503 and "has not turned" in stuck.json()["status"]
    try:
        httpx.get(url + "/healthz", timeout=2)
    except httpx.TransportError:
        pass
    else:
        raise AssertionError("the listener still answers after stop()")
