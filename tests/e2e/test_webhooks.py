"""Webhooks end to end: a real API and worker (with fast retry settings) deliver to a real receiver (an
HTTP server in this process). A train job's three events arrive signed (checked here with hmac, not with
the service's code); a receiver that is down gets everything once it is back, each delivery under one id
across its retries, and the job never waited for it; a deleted hook hears nothing more; bad
registrations are refused; the CLI drives it all."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import cli
from tests.conftest import Api, DigitsTask, Service, start_service, wait_for
from tests.receiver import Receiver

MAX_BACKOFF_S = 0.5
WEBHOOK_ENV = {"LIFELONG_WEBHOOK_POLL_S": "0.05", "LIFELONG_WEBHOOK_BACKOFF_S": "0.1",
               "LIFELONG_WEBHOOK_BACKOFF_MAX_S": str(MAX_BACKOFF_S), "LIFELONG_WEBHOOK_TIMEOUT_S": "2",
               # Retries every 0.5 s while a job trains: not to be given up before the receiver comes back.
               "LIFELONG_WEBHOOK_MAX_ATTEMPTS": "1000"}
ALL = ["job.finished", "version.created", "alias.moved"]
FAST = {"epochs": 2}


@pytest.fixture(scope="module")
def hooked_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = start_service(tmp_path_factory.mktemp("webhooks") / "var", env=WEBHOOK_ENV)
    yield running
    running.close()


@pytest.fixture(scope="module")
def hooked(hooked_service: Service, digits: list[DigitsTask]) -> Iterator[Api]:
    with hooked_service.client() as http:
        yield Api(http, digits)


def _register(api: Api, model: str, url: str, secret: str, events: list[str] = ALL) -> dict[str, Any]:
    response = api.http.post(f"/v1/models/{model}/webhooks", json={"url": url, "events": events, "secret": secret})
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/models/{model}/webhooks/{response.json()['id']}"
    return response.json()


def _log(api: Api, model: str, hook: int) -> list[dict[str, Any]]:
    return api.get(f"/v1/models/{model}/webhooks/{hook}/deliveries")


def test_a_train_job_sends_its_version_alias_and_job_events_signed(hooked: Api) -> None:
    secret = "correct horse battery staple"
    with Receiver() as receiver:
        model = hooked.create_model("hooked")
        hook = _register(hooked, model, receiver.url(), secret)
        assert hook == {"id": hook["id"], "model": model, "url": receiver.url(), "events": ALL,
                        "created_at": hook["created_at"]}
        for answer in (hooked.http.get(f"/v1/models/{model}/webhooks"),
                       hooked.http.get(f"/v1/models/{model}/webhooks/{hook['id']}")):
            assert answer.status_code == 200 and secret not in answer.text and "secret" not in answer.text
        job = hooked.wait_job(hooked.submit_task(model, hooked.digits[0], **FAST)["id"])
        assert job["state"] == "succeeded"
        sent = wait_for(lambda: len(receiver.deliveries()) >= 3 and receiver.deliveries(), deadline_s=30,
                        what="three deliveries")

    assert len(sent) == 3
    requests = [first for first, *_ in sent.values()]
    assert all(r.signed_with(secret) and not r.signed_with(secret + "!") for r in requests)
    payloads = {r.payload["event"]: r.payload for r in requests}
    assert set(payloads) == set(ALL)
    for r in requests:
        assert r.headers["x-lifelong-delivery"] == r.payload["id"]
        assert r.headers["x-lifelong-event"] == r.payload["event"]
        assert r.headers["content-type"] == "application/json" and r.path == "/hook"
        assert set(r.payload) == {"id", "event", "created_at", "model", "data"} and r.payload["model"] == model
    created, moved, finished = (payloads[e]["data"] for e in ("version.created", "alias.moved", "job.finished"))
    assert (created["version"], created["kind"], created["task"], created["parent"], created["job"]) == (
        1, "train", hooked.digits[0].name, 0, job["id"])
    assert (moved["alias"], moved["from"], moved["to"], moved["by"]) == ("production", 0, 1, f"job {job['id']}")
    assert (finished["job"], finished["kind"], finished["state"]) == (job["id"], "train", "succeeded")
    assert finished["result"]["version"] == 1 and finished["result"]["promotion"] == job["result"]["promotion"]

    log = wait_for(lambda: (log := _log(hooked, model, hook["id"])) and all(d["state"] == "delivered" for d in log)
                   and log, deadline_s=10, what="the log to say delivered")
    assert sorted(d["id"] for d in log) == sorted(sent)
    assert all(d["attempts"] == 1 and d["last_status"] == 200 and d["delivered_at"] and d["next_attempt_at"] is None
               for d in log)


def test_a_receiver_that_is_down_gets_everything_once_back_and_the_job_never_waits(hooked: Api) -> None:
    receiver = Receiver(status=lambda _n, _path: 200)  # its port is closed until it starts
    model = hooked.create_model("down")
    hook = _register(hooked, model, receiver.url(), "s")
    started = time.monotonic()
    job = hooked.wait_job(hooked.submit_task(model, hooked.digits[0], **FAST)["id"])
    assert job["state"] == "succeeded"  # while every delivery fails
    assert time.monotonic() - started < 60

    def retried() -> list[dict[str, Any]] | None:
        log = _log(hooked, model, hook["id"])
        return log if len(log) == 3 and all(d["attempts"] >= 2 for d in log) else None

    failing = wait_for(retried, deadline_s=30, what="every delivery to fail twice")
    for delivery in failing:
        assert delivery["state"] == "pending" and delivery["last_status"] is None
        assert "ConnectError" in delivery["last_error"] and delivery["next_attempt_at"] is not None
        assert all(a["status"] is None for a in delivery["attempt_log"])

    # Back, but each delivery's first request now is answered 503: it comes again, under the same id.
    answered: dict[str, int] = {}

    def once_503(request_number: int, _path: str) -> int:
        request = receiver.requests()[request_number - 1]
        answered[request.delivery] = answered.get(request.delivery, 0) + 1
        return 503 if answered[request.delivery] == 1 else 200

    receiver.status = once_503
    with receiver:
        log = wait_for(lambda: (log := _log(hooked, model, hook["id"])) and all(d["state"] == "delivered" for d in log)
                       and log, deadline_s=30, what="every delivery to arrive")
        by_id = receiver.deliveries()
    assert set(by_id) == {d["id"] for d in log} and {e for e in (d["event"] for d in log)} == set(ALL)
    for delivery in log:
        requests = by_id[delivery["id"]]
        assert len(requests) == 2 and len({r.body for r in requests}) == 1  # the same bytes, the same id
        assert all(r.signed_with("s") and r.payload["id"] == delivery["id"] for r in requests)
        statuses = [a["status"] for a in delivery["attempt_log"]]
        assert statuses[-2:] == [503, 200] and set(statuses[:-2]) == {None} and len(statuses) >= 4
        # The log keeps the latest 20 attempts, numbered.
        numbers = [a["attempt"] for a in delivery["attempt_log"]]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) and numbers[-1] == delivery["attempts"]
        assert delivery["last_status"] == 200
        assert delivery["last_error"] is None and delivery["delivered_at"] is not None


def test_a_deleted_hook_hears_nothing_more(hooked: Api) -> None:
    with Receiver(status=lambda _n, path: 500 if path == "/doomed" else 200) as receiver:
        model = hooked.create_model("deleted")
        doomed = _register(hooked, model, receiver.url("/doomed"), "a", ["alias.moved"])
        kept = _register(hooked, model, receiver.url("/kept"), "b", ["alias.moved"])
        assert hooked.http.put(f"/v1/models/{model}/aliases/canary", json={"version": 0}).status_code == 200
        wait_for(lambda: len(receiver.requests("/doomed")) >= 2, deadline_s=20, what="the doomed hook's retries")

        assert hooked.http.delete(f"/v1/models/{model}/webhooks/{doomed['id']}").status_code == 204
        deleted_at = time.monotonic()
        assert hooked.http.get(f"/v1/models/{model}/webhooks/{doomed['id']}").status_code == 404
        assert hooked.http.get(f"/v1/models/{model}/webhooks/{doomed['id']}/deliveries").status_code == 404
        assert [h["id"] for h in hooked.get(f"/v1/models/{model}/webhooks")] == [kept["id"]]
        assert hooked.http.put(f"/v1/models/{model}/aliases/canary", json={"version": 0}).status_code == 200
        # Long enough for several retries of the deleted hook's delivery, had it been kept.
        wait_for(lambda: len(receiver.requests("/kept")) >= 2 and time.monotonic() > deleted_at + 4 * MAX_BACKOFF_S,
                 deadline_s=20, what="the kept hook's second event")
        late = [r for r in receiver.requests("/doomed") if r.at > deleted_at + 0.5]  # one in flight may land
    assert late == []
    assert [r.payload["data"]["from"] for r in receiver.requests("/kept")] == [None, 0]


@pytest.mark.parametrize("body", [
    {"url": "not a url", "events": ALL, "secret": "s"},
    {"url": "ftp://127.0.0.1/hook", "events": ALL, "secret": "s"},
    {"url": "http://", "events": ALL, "secret": "s"},
    {"url": "http://127.0.0.1:99999/hook", "events": ALL, "secret": "s"},
    {"url": "http://127.0.0.1/hook", "events": ALL},
    {"url": "http://127.0.0.1/hook", "events": ALL, "secret": ""},
    {"url": "http://127.0.0.1/hook", "events": ["job.started"], "secret": "s"},
    {"url": "http://127.0.0.1/hook", "events": [], "secret": "s"},
    {"url": "http://127.0.0.1/hook", "events": ["job.finished", "job.finished"], "secret": "s"},
    {"url": "http://127.0.0.1/hook", "secret": "s"},
    {"url": "http://127.0.0.1/hook", "events": ALL, "secret": "s", "verify": False},
])
def test_bad_registrations_are_refused(hooked: Api, body: dict[str, Any]) -> None:
    model = hooked.create_model("refused")
    response = hooked.http.post(f"/v1/models/{model}/webhooks", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][0] == "body"
    assert hooked.get(f"/v1/models/{model}/webhooks") == []


def test_unknown_models_and_hooks_are_404(hooked: Api) -> None:
    body = {"url": "http://127.0.0.1/hook", "events": ALL, "secret": "s"}
    assert hooked.http.post("/v1/models/no-such-model/webhooks", json=body).status_code == 404
    model = hooked.create_model("nohook")
    for path in ("/webhooks/12345", "/webhooks/12345/deliveries"):
        assert hooked.http.get(f"/v1/models/{model}{path}").status_code == 404
    assert hooked.http.delete(f"/v1/models/{model}/webhooks/12345").status_code == 404
    assert hooked.http.delete(f"/v1/models/{model}/webhooks/{2**63}").status_code == 422  # not a database id
    other = hooked.create_model("nohook")
    hook = _register(hooked, other, "http://127.0.0.1/hook", "s")
    assert hooked.http.get(f"/v1/models/{model}/webhooks/{hook['id']}").status_code == 404  # another model's


def test_the_cli_adds_lists_shows_deliveries_and_removes(hooked_service: Service, hooked: Api) -> None:
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> Any:
        result = runner.invoke(cli, ["--url", hooked_service.url, "webhooks", *args], input=stdin,
                               catch_exceptions=False)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result

    model = hooked.create_model("cli")
    with Receiver() as receiver:
        added = json.loads(run("add", model, "--url", receiver.url(), "--events", "alias.moved", "--secret", "x",
                               "--json").stdout)
        assert (added["url"], added["events"]) == (receiver.url(), ["alias.moved"])
        prompted = run("add", model, "--url", receiver.url("/other"), stdin="typed secret\n").stdout
        assert "sends job.finished, version.created, alias.moved, drift.detected" in prompted
        assert "typed secret" not in prompted
        listed = run("list", model).stdout
        assert receiver.url() in listed and "alias.moved" in listed
        assert hooked.http.put(f"/v1/models/{model}/aliases/canary", json={"version": 0}).status_code == 200
        wait_for(lambda: len(receiver.requests("/hook")) == 1 and receiver.requests("/other"), deadline_s=20,
                 what="the CLI hooks' deliveries")
        [other] = receiver.requests("/other")
        assert other.signed_with("typed secret")
    delivered = wait_for(lambda: (d := json.loads(run("deliveries", model, str(added["id"]), "--json").stdout))
                         and d[0]["state"] == "delivered" and d, deadline_s=10, what="the log to say delivered")
    assert [(d["event"], d["attempts"], d["last_status"]) for d in delivered] == [("alias.moved", 1, 200)]
    assert "alias.moved" in run("deliveries", model, str(added["id"])).stdout
    assert f"removed webhook {added['id']}" in run("remove", model, str(added["id"])).stdout
    missing = runner.invoke(cli, ["--url", hooked_service.url, "webhooks", "remove", model, str(added["id"])])
    assert missing.exit_code == 4
    bad = runner.invoke(cli, ["--url", hooked_service.url, "webhooks", "add", model, "--url", "ftp://x",
                              "--secret", "s"])
    assert bad.exit_code == 3 and "http or https" in bad.stderr
