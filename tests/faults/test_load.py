"""Under load: 200 concurrent clients of GET predictions against a real API, with health and readiness
probed all the while.

Predictions past the API's bound (LIFELONG_PREDICT_WORKERS running + LIFELONG_PREDICT_QUEUE waiting) are
shed with 503 and Retry-After rather than queued without bound; /healthz (on the event loop) and /readyz
(a database and broker check) keep answering, on the API's port and on the health port
(LIFELONG_HEALTH_PORT: a process beside the API, for load balancers' probes). The load runs from its own
process (load_generator.py) for
`LIFELONG_LOAD_SECONDS` (5 here; the reliability report runs 20) in two kinds: clients that wait as
Retry-After says, and clients that ignore it and send again at once. Its figures go to the report: p50
and p99 of answered predictions, the shed rate, and the health and readiness latencies.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from tests.conftest import Api, Service, free_port, start_service
from tests.faults.conftest import LOAD, SCENARIOS, TALLY

CLIENTS = 200
SECONDS = float(os.environ.get("LIFELONG_LOAD_SECONDS", "5"))
GENERATOR = Path(__file__).with_name("load_generator.py")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, digits) -> Iterator[tuple[Service, str, str]]:
    running = start_service(tmp_path_factory.mktemp("loaded") / "var", env={"LIFELONG_HEALTH_PORT": str(free_port())})
    try:
        with running.client() as http:
            api = Api(http, digits)
            model = api.create_model("loaded")
            api.learn(model, api.digits[0], epochs=1)
            yield running, model, api.digits[0].name
    finally:
        running.close()


def quantile(values: list[float], q: float) -> float:
    return float(np.quantile(values, q)) if values else float("nan")


PROBES = {"/healthz": "", "/readyz": "", "health port /healthz": "/healthz", "health port /readyz": "/readyz"}


def probe(urls: dict[str, str], stop: threading.Event, latencies: dict[str, list[float]], statuses: list[int]) -> None:
    """Health and readiness on both ports, one after the other every 50 ms, each on a fresh connection
    as a load balancer's probe would be (plain http.client: an httpx client per probe would add its TLS
    context's set-up, tens of milliseconds, to every figure)."""
    while not stop.is_set():
        for name, url in urls.items():
            address = urlsplit(url)
            started = time.monotonic()
            connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
            try:
                connection.request("GET", address.path)
                answer = connection.getresponse()
                answer.read()
            finally:
                connection.close()
            latencies[name].append(time.monotonic() - started)
            statuses.append(answer.status)
        stop.wait(0.05)


def load(running: Service, model: str, task: str, *, polite: bool) -> tuple[dict, dict[str, list[float]], list[int]]:
    """The generator's summary, and the probe's latencies and statuses while it ran."""
    params = {"task": task, "inputs": json.dumps(np.zeros((1, 64)).tolist())}
    stop = threading.Event()
    health: dict[str, list[float]] = {name: [] for name in PROBES}
    health_url = f"http://127.0.0.1:{running.env['LIFELONG_HEALTH_PORT']}"
    urls = {name: (health_url + path if path else running.url + name) for name, path in PROBES.items()}
    statuses: list[int] = []
    prober = threading.Thread(target=probe, args=(urls, stop, health, statuses), daemon=True)
    prober.start()
    try:
        command = [sys.executable, str(GENERATOR), f"{running.url}/v1/models/{model}/predict", "--params",
                   json.dumps(params), "--clients", str(CLIENTS), "--seconds", str(SECONDS)]
        done = subprocess.run(command + ["--polite"] * polite, capture_output=True, text=True,
                              timeout=SECONDS + 180, check=True)
    finally:
        stop.set()
        prober.join(timeout=60)
    return json.loads(done.stdout), health, statuses


@pytest.mark.parametrize("polite", [True, False], ids=["clients-wait-as-told", "clients-ignore-retry-after"])
def test_under_load_predictions_are_shed_and_health_keeps_answering(loaded, polite: bool) -> None:
    running, model, task = loaded
    summary, health, health_statuses = load(running, model, task, polite=polite)
    statuses = summary["statuses"]
    answered, shed = statuses.get("200", 0), statuses.get("503", 0)
    total = sum(statuses.values())

    assert set(statuses) <= {"200", "503"}, statuses  # nothing else: no 5xx, no dropped connection
    assert answered > 0
    assert summary["retry_after"].get("without", 0) == 0  # every shed request says when to come back
    assert set(health_statuses) == {200}, health_statuses
    assert len(health["/healthz"]) >= 5
    figures = {path: [quantile(seconds, q) for q in (0.5, 0.9, 0.99)] for path, seconds in health.items()}
    if polite:
        # The median, which a busy test machine does not move: health and readiness never queue behind
        # predictions. Their p99 and slowest answers are the report's.
        assert quantile(health["/healthz"], 0.5) < 0.1, figures
        assert quantile(health["/readyz"], 0.5) < 0.1, figures
    else:
        # Clients that send again at once keep the one event loop busy with their 503s; health still
        # answers, within a bound (the report has the figures).
        assert quantile(health["/healthz"], 0.5) < 1.0, figures
    # The health port does not wait for the event loop at all, whatever the clients do.
    assert quantile(health["health port /healthz"], 0.5) < 0.1, figures
    assert quantile(health["health port /readyz"], 0.5) < 0.1, figures

    predicted = summary["latencies_s"].get("200", [])
    kind = "clients wait as Retry-After says" if polite else "clients ignore Retry-After"
    LOAD[kind] = {
        "requests": total, "answered per second": answered / SECONDS, "shed rate (503 with Retry-After)": shed / total,
        "prediction p50 (s)": quantile(predicted, 0.5), "prediction p99 (s)": quantile(predicted, 0.99),
        **{f"{path} {name} (s)": quantile(seconds, q) for path, seconds in health.items()
           for name, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))},
    }
    TALLY["requests sent"] += total + len(health_statuses)
    SCENARIOS.append(f"load, {kind}: {CLIENTS} concurrent clients of GET predictions for {SECONDS:g} s from their "
                     "own process, /healthz and /readyz probed every 50 ms on both ports; only 200 and 503 "
                     "(with Retry-After) answered")
