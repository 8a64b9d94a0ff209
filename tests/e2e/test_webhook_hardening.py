"""Issue 25 items 4 and 5: webhooks against a real API and worker, real receivers in this process.

Item 4: a receiver that never answers holds only its own slots (LIFELONG_WEBHOOK_TARGET_CONCURRENCY), so
another model's delivery arrives at once while 40 wait on it; a model has at most
LIFELONG_MAX_WEBHOOKS_PER_MODEL hooks (409 past it); a deleted hook's id is never given again. Item 5: each
delivery carries X-Lifelong-Timestamp-Signature (t=…,v1=HMAC of "t.body"), which scripts/webhook_receiver.py
checks along with the 5-minute replay window; a URL whose host resolves to a loopback, private, link-local
or metadata address is refused at creation, and at delivery (a worker without LIFELONG_WEBHOOK_ALLOW_PRIVATE
refuses a hook an API with it let in, as it would a host whose DNS changed); the secret is encrypted in the
database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.cluster import free_port
from tests.conftest import REPO, Api, DigitsTask, Service, start_service, wait_for
from tests.receiver import Receiver

FAST = {"LIFELONG_WEBHOOK_POLL_S": "0.05", "LIFELONG_WEBHOOK_BACKOFF_S": "0.1", "LIFELONG_WEBHOOK_BACKOFF_MAX_S": "0.5",
        "LIFELONG_WEBHOOK_TIMEOUT_S": "20", "LIFELONG_WEBHOOK_CONCURRENCY": "4",
        "LIFELONG_WEBHOOK_TARGET_CONCURRENCY": "2", "LIFELONG_MAX_WEBHOOKS_PER_MODEL": "3"}


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory, digits: list[DigitsTask]) -> Iterator[Api]:
    running: Service = start_service(tmp_path_factory.mktemp("hardened") / "var", env=FAST)
    with running.client() as http:
        api = Api(http, digits)
        api.service = running  # type: ignore[attr-defined]
        yield api
    running.close()


def _register(api: Api, model: str, url: str, secret: str = "s", events: list[str] | None = None) -> httpx.Response:
    return api.http.post(f"/v1/models/{model}/webhooks",
                         json={"url": url, "events": events or ["alias.moved"], "secret": secret})


def _move(api: Api, model: str, alias: str) -> None:
    assert api.http.put(f"/v1/models/{model}/aliases/{alias}", json={"version": 0}).status_code == 200


class BlackHole:
    """A receiver that accepts connections and reads, but never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.sock.close()
        for connection in self.accepted:
            connection.close()


def test_a_receiver_that_never_answers_delays_only_itself(hooked: Api) -> None:
    hole = BlackHole()
    try:
        stuck = hooked.create_model("stuck")
        assert _register(hooked, stuck, f"http://127.0.0.1:{hole.port}/hook").status_code == 201
        for n in range(40):
            _move(hooked, stuck, f"a{n}")
        wait_for(lambda: len(hole.accepted) >= 2, deadline_s=20, what="the stuck receiver's first sends")
        with Receiver() as receiver:
            other = hooked.create_model("other")
            assert _register(hooked, other, receiver.url()).status_code == 201
            moved = time.monotonic()
            _move(hooked, other, "canary")
            wait_for(lambda: receiver.requests(), deadline_s=10, what="the other model's delivery")
            waited = receiver.requests()[0].at - moved
        assert waited < 3.0, waited  # not behind 40 sends of 20 s each
        time.sleep(0.5)
        assert len(hole.accepted) <= 2  # the stuck target never got more than its own two slots
    finally:
        hole.close()


def test_a_model_has_at_most_the_cap_of_hooks_and_ids_are_never_reused(hooked: Api) -> None:
    model = hooked.create_model("capped")
    ids = [_register(hooked, model, f"http://127.0.0.1:9/h{n}").json()["id"] for n in range(3)]
    refused = _register(hooked, model, "http://127.0.0.1:9/h3")
    assert refused.status_code == 409 and "LIFELONG_MAX_WEBHOOKS_PER_MODEL" in refused.json()["detail"]
    assert [h["id"] for h in hooked.get(f"/v1/models/{model}/webhooks")] == ids
    assert hooked.http.delete(f"/v1/models/{model}/webhooks/{ids[-1]}").status_code == 204
    again = _register(hooked, model, "http://127.0.0.1:9/h4")
    assert again.status_code == 201 and again.json()["id"] > ids[-1]  # the deleted hook's id stays unused
    assert _register(hooked, hooked.create_model("other"), "http://127.0.0.1:9/h").status_code == 201


def test_deliveries_carry_a_timestamped_signature_and_the_secret_is_encrypted_at_rest(hooked: Api) -> None:
    secret = "a secret nobody reads twice"
    with Receiver() as receiver:
        model = hooked.create_model("signed")
        assert _register(hooked, model, receiver.url(), secret).status_code == 201
        _move(hooked, model, "canary")
        [request] = wait_for(lambda: receiver.requests(), deadline_s=20, what="the delivery")
    timestamp = request.timestamp_signed_with(secret)
    assert timestamp is not None and abs(time.time() - timestamp) < 60
    assert request.timestamp_signed_with(secret + "!") is None and request.signed_with(secret)

    database = hooked.service.var_dir / "lifelong.sqlite3"  # type: ignore[attr-defined]
    with sqlite3.connect(database) as connection:
        stored = [row[0] for row in connection.execute("SELECT secret_encrypted FROM webhooks")]
    assert stored and all(secret not in value for value in stored)
    for path in database.parent.glob("lifelong.sqlite3*"):  # the database, its WAL and shared memory
        assert secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("host, address", [
    ("127.1", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("localhost", "127.0.0.1"),
    ("169.254.169.254", "169.254.169.254"), ("10.0.0.5", "10.0.0.5"), ("192.168.1.1", "192.168.1.1"),
    ("100.100.100.200", "100.100.100.200"), ("0.0.0.0", "0.0.0.0"),  # noqa: S104 - a target refused, not bound
])
def test_private_targets_are_refused_at_creation(strict: Api, host: str, address: str) -> None:
    model = strict.create_model("ssrf")
    response = _register(strict, model, f"http://{host}:8080/hook")
    assert response.status_code == 422, response.text
    assert f"resolves to {address}" in response.json()["detail"] and "LIFELONG_WEBHOOK_ALLOW_PRIVATE" in response.text
    assert strict.get(f"/v1/models/{model}/webhooks") == []


def test_a_public_address_is_accepted_and_an_unresolvable_host_refused(strict: Api) -> None:
    model = strict.create_model("public")
    assert _register(strict, model, "http://93.184.216.34/hook").status_code == 201
    response = _register(strict, model, "http://no-such-host.invalid/hook")
    assert response.status_code == 422 and "does not resolve" in response.json()["detail"]


def test_the_worker_checks_the_target_again_at_delivery(tmp_path: Path, digits: list[DigitsTask]) -> None:
    """An API that allows private targets lets a loopback hook in; a worker that does not refuses each send."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    running = Service(var_dir=var_dir, port=free_port(), env={**FAST, "LIFELONG_WEBHOOK_MAX_ATTEMPTS": "2"})
    try:
        running.start("api", "api", "--port", str(running.port))
        running.wait_healthy()
        running.env["LIFELONG_WEBHOOK_ALLOW_PRIVATE"] = "false"  # the worker's environment only
        running.start("worker", "worker")
        with Receiver() as receiver, running.client() as http:
            api = Api(http, digits)
            model = api.create_model("rebound")
            hook = _register(api, model, receiver.url()).json()
            _move(api, model, "canary")
            [delivery] = wait_for(lambda: (log := api.get(f"/v1/models/{model}/webhooks/{hook['id']}/deliveries"))
                                  and log[0]["state"] == "failed" and log, deadline_s=30, what="the refusals")
            assert receiver.requests() == []
        assert delivery["attempts"] == 2 and "refused" in delivery["last_error"]
        assert "resolves to 127.0.0.1, a loopback address" in delivery["last_error"]
    finally:
        running.close()


def _post_to(url: str, body: bytes, secret: str, timestamp: int) -> httpx.Response:
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return httpx.post(url, content=body, headers={"X-Lifelong-Timestamp-Signature": f"t={timestamp},v1={signature}",
                                                  "X-Lifelong-Delivery": f"replay-{timestamp}"})


def test_the_walkthrough_receiver_takes_fresh_deliveries_and_refuses_replays(hooked: Api, tmp_path: Path) -> None:
    port, out, secret = free_port(), tmp_path / "events.jsonl", "loop secret"
    receiver = subprocess.Popen([sys.executable, "scripts/webhook_receiver.py", "--port", str(port), "--secret",
                                 secret, "--out", str(out)], cwd=REPO)
    try:
        url = f"http://127.0.0.1:{port}/hook"
        wait_for(lambda: _answers(url), deadline_s=20, what="the receiver to listen")
        model = hooked.create_model("walk")
        assert _register(hooked, model, url, secret).status_code == 201
        _move(hooked, model, "canary")
        events = wait_for(lambda: out.exists() and out.read_text().splitlines(), deadline_s=20, what="the event")
        assert [json.loads(line)["event"] for line in events] == ["alias.moved"]

        body = json.dumps({"event": "alias.moved", "data": {}}).encode()
        stale = _post_to(url, body, secret, int(time.time()) - 600)
        assert stale.status_code == 401 and "replay window" in stale.text
        assert _post_to(url, body, secret + "!", int(time.time())).status_code == 401
        assert _post_to(url, body, secret, int(time.time())).status_code == 200
        assert len(out.read_text().splitlines()) == 2
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1.0)
    except httpx.HTTPError:
        return False
    return True


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, digits: list[DigitsTask]) -> Iterator[Api]:
    """An API alone, without LIFELONG_WEBHOOK_ALLOW_PRIVATE: hooks go to public addresses only."""
    var_dir = tmp_path_factory.mktemp("strict") / "var"
    var_dir.mkdir()
    running = Service(var_dir=var_dir, port=free_port(), env={"LIFELONG_WEBHOOK_ALLOW_PRIVATE": "false"})
    running.start("api", "api", "--port", str(running.port))
    running.wait_healthy()
    with running.client() as http:
        yield Api(http, digits)
    running.close()
