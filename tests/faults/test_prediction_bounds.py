"""Bounded work per prediction over HTTP: a deadline, a stop when the client goes, load shed with Retry-After.

The API runs with the `slow_predictions` fault: each look of a prediction at its deadline (between slices
of 256 rows) waits 0.5 s, so that a request of 20 slices takes 10 s however fast this machine is, and
the tests do not depend on how fast it computes. One prediction thread and no queue: a second
prediction while one runs is shed.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.conftest import Api, Service, start_service, wait_for

NPY = {"content-type": "application/x-npy"}
SETTINGS = {"LIFELONG_INJECT_FAULTS": "slow_predictions", "LIFELONG_PREDICT_WORKERS": "1",
            "LIFELONG_PREDICT_QUEUE": "0", "LIFELONG_PREDICT_TIMEOUT_S": "3", "LIFELONG_MAX_PREDICT_TEXTS": "5"}


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory, digits) -> Iterator[tuple[Service, Api, str]]:
    running = start_service(tmp_path_factory.mktemp("bounded") / "var", env=SETTINGS)
    try:
        with running.client() as http:
            api = Api(http, digits)
            model = api.create_model("bounded")
            api.learn(model, api.digits[0], epochs=1)
            yield running, api, model
    finally:
        running.close()


def _requests_with_status(http: httpx.Client, status: int) -> float:
    found = re.findall(rf'lifelong_http_requests_total{{[^}}]*route="/v1/models/{{name}}/predict"[^}}]*'
                       rf'status="{status}"[^}}]*}} ([0-9.e+]+)', http.get("/metrics").text)
    return sum(float(v) for v in found)


def test_past_its_deadline_a_prediction_is_a_504_naming_the_setting(bounded) -> None:
    running, api, model = bounded
    rows = np.repeat(api.digits[0].x_test[:1], 256 * 20, axis=0)  # 20 slices: 10 s, past the 3 s deadline
    with running.client() as http:
        started = time.monotonic()
        response = http.post(f"/v1/models/{model}/predict?task={api.digits[0].name}", content=api.npy_bytes(rows),
                             headers=NPY)
    assert response.status_code == 504, response.text
    assert "LIFELONG_PREDICT_TIMEOUT_S" in response.json()["detail"]
    assert time.monotonic() - started < 9  # it stopped at the deadline, not after all 20 slices


def test_a_prediction_stops_when_its_client_goes_and_excess_load_is_shed(bounded) -> None:
    running, api, model = bounded
    task = api.digits[0]
    url = f"/v1/models/{model}/predict?task={task.name}"
    slow_body = api.npy_bytes(np.repeat(task.x_test[:1], 256 * 20, axis=0))
    gone: list[BaseException] = []

    def impatient_client() -> None:  # gives up after 1 s and closes its connection
        with httpx.Client(base_url=running.url, timeout=httpx.Timeout(60, read=1.0)) as http:
            try:
                http.post(url, content=slow_body, headers=NPY)
            except httpx.ReadTimeout as error:
                gone.append(error)

    with running.client() as http:
        before, shed_before = _requests_with_status(http, 499), _requests_with_status(http, 503)
        thread = threading.Thread(target=impatient_client, daemon=True)
        thread.start()
        wait_for(lambda: "lifelong_predictions_admitted 1.0" in http.get("/metrics").text, deadline_s=20,
                 what="the slow prediction to be admitted", every_s=0.02)
        one_row = api.npy_bytes(task.x_test[:1])

        def shed() -> httpx.Response | None:
            response = http.post(url, content=one_row, headers=NPY)
            return response if response.status_code == 503 else None

        refused = wait_for(shed, deadline_s=20, what="a prediction to be shed while the slow one runs", every_s=0.02)
        assert refused.headers["retry-after"] == "1"
        assert "LIFELONG_PREDICT_WORKERS" in refused.json()["detail"]
        assert _requests_with_status(http, 503) > shed_before  # refused before any route, and still counted
        assert http.get("/healthz").status_code == 200  # health never waits behind predictions
        thread.join(timeout=30)
        assert gone, "the impatient client should have timed out"
        # The server notices the closed connection and stops at its next slice: answered 499, not
        # run on to its 3 s deadline (504) or its 10 s end.
        wait_for(lambda: _requests_with_status(http, 499) > before, deadline_s=20,
                 what="the abandoned prediction to stop (499)")
        answered = http.post(url, content=one_row, headers=NPY)
        assert answered.status_code == 200, answered.text  # its thread is free again


def test_texts_past_their_own_cap_are_a_413_naming_it(bounded) -> None:
    running, _, model = bounded
    with running.client() as http:
        response = http.post(f"/v1/models/{model}/predict", json={"task": "t", "texts": ["a"] * 6})
    assert response.status_code == 413
    assert "LIFELONG_MAX_PREDICT_TEXTS" in response.json()["detail"]
