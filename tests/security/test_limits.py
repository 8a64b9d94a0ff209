"""Every limit against a real API with small settings: body bytes (413, decided while streaming),
inline rows (413), input values and epochs × rows (422), active jobs per model (429), and no
pickle or unvalidated path anywhere.

The API runs with no worker, so submitted jobs stay queued and count against the active-jobs limit.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, Api, Service, free_port, npz_bytes, unique

UPLOAD_LIMIT = 1 << 20
LIMITS = {
    "LIFELONG_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
    "LIFELONG_MAX_INLINE_ROWS": "50",
    "LIFELONG_MAX_INPUT_VALUES": "1000",
    "LIFELONG_MAX_JOB_SAMPLES": "100000",
    "LIFELONG_MAX_ACTIVE_JOBS_PER_MODEL": "2",
    "LIFELONG_MAX_PREDICT_ROWS": "30",
}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    var_dir = tmp_path_factory.mktemp("limited") / "var"
    var_dir.mkdir()
    running = Service(var_dir=var_dir, port=free_port(), env=LIMITS)
    running.start("api", "api", "--port", str(running.port))
    running.wait_healthy()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def lapi(limited: Service, digits) -> Iterator[Api]:
    with limited.client() as http:
        yield Api(http, digits)


def dataset_count(lapi: Api) -> int:
    return len(lapi.get("/v1/datasets"))


def test_upload_over_the_limit_is_413(lapi: Api) -> None:
    before = dataset_count(lapi)
    for rows in (UPLOAD_LIMIT // 256, 4 * UPLOAD_LIMIT // 256):  # just over (file check), far over (body)
        big = np.random.default_rng(0).random((rows, 64)).astype(np.float32)
        response = lapi.http.post("/v1/datasets", files={"file": ("big.npz", npz_bytes(x=big))})
        assert response.status_code == 413 and "LIFELONG_MAX_UPLOAD_BYTES" in response.json()["detail"]
    assert dataset_count(lapi) == before


def test_streamed_upload_is_refused_before_it_ends(limited: Service, lapi: Api) -> None:
    """Chunked, with no Content-Length: the 413 comes back while most of the body is still unsent."""
    before = dataset_count(lapi)
    total, chunk = 16 * UPLOAD_LIMIT, b"0" * (64 << 10)
    sent = 0
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/datasets HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: multipart/form-data; boundary=B\r\n\r\n")
        head = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
        sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        sock.setblocking(False)
        answer = b""
        while sent < total and not answer:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                answer = sock.recv(65536)
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        answer += sock.recv(65536) if not answer else b""
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < total // 2, f"the server read {sent} of {total} bytes before refusing"
    assert dataset_count(lapi) == before


def test_inline_rows_limit(lapi: Api) -> None:
    model = lapi.create_model("rows")
    rows = np.zeros((51, 64)).tolist()
    body = {"task": "t", "train": {"inputs": rows, "labels": [0, 1] * 25 + [0]}}
    response = lapi.http.post(f"/v1/models/{model}/tasks", json=body)
    assert response.status_code == 413 and "LIFELONG_MAX_INLINE_ROWS" in response.json()["detail"]
    response = lapi.http.post(f"/v1/models/{model}/importance", json={"data": {"inputs": rows}})
    assert response.status_code == 413
    assert lapi.get("/v1/jobs", model=model) == []


@pytest.mark.parametrize("architecture", [
    {"kind": "mlp", "input_shape": [1001], "hidden": [8]},
    {"kind": "cnn", "input_shape": [3, 20, 20], "channels": [4], "hidden": [8]},
])
def test_input_values_limit(lapi: Api, architecture: dict) -> None:
    name = unique("wide")
    response = lapi.http.post("/v1/models", json={"name": name, "architecture": architecture})
    assert response.status_code == 422 and "LIFELONG_MAX_INPUT_VALUES" in response.json()["detail"]
    assert lapi.http.get(f"/v1/models/{name}").status_code == 404


def test_epochs_times_rows_limit(lapi: Api) -> None:
    model = lapi.create_model("work")
    task = lapi.digits[0]
    response = lapi.http.post(f"/v1/models/{model}/tasks", json=lapi.task_body(task, epochs=100_000 // 100))
    assert len(task.x_train) > 100
    assert response.status_code == 422 and "LIFELONG_MAX_JOB_SAMPLES" in response.json()["detail"]


def test_active_jobs_per_model_limit(lapi: Api) -> None:
    model = lapi.create_model("busy")
    rows = {"inputs": np.eye(4, 64).tolist(), "labels": [0, 1, 0, 1]}
    accepted = [lapi.http.post(f"/v1/models/{model}/tasks", json={"task": f"t{i}", "train": rows, "epochs": 1})
                for i in range(2)]
    assert [r.status_code for r in accepted] == [202, 202]
    refused = lapi.http.post(f"/v1/models/{model}/tasks", json={"task": "t2", "train": rows, "epochs": 1})
    assert refused.status_code == 429 and "LIFELONG_MAX_ACTIVE_JOBS_PER_MODEL" in refused.json()["detail"]
    assert lapi.http.post(f"/v1/models/{model}/importance", json={"data": rows}).status_code in (422, 429)
    other = lapi.create_model("idle")  # the limit is per model
    elsewhere = lapi.http.post(f"/v1/models/{other}/tasks", json={"task": "t", "train": rows, "epochs": 1})
    assert elsewhere.status_code == 202
    assert lapi.http.post(f"/v1/jobs/{accepted[0].json()['id']}/cancel").status_code == 202
    again = lapi.http.post(f"/v1/models/{model}/tasks", json={"task": "t2", "train": rows, "epochs": 1})
    assert again.status_code == 202


def test_active_jobs_limit_holds_under_a_burst(lapi: Api, limited: Service) -> None:
    """20 POSTs at once and no worker to finish any: exactly the limit gets in, the rest are 429."""
    model = lapi.create_model("burst")
    rows = {"inputs": np.eye(4, 64).tolist(), "labels": [0, 1, 0, 1]}

    def post(index: int) -> int:
        with limited.client() as http:
            return http.post(f"/v1/models/{model}/tasks",
                             json={"task": f"t{index}", "train": rows, "epochs": 1}).status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = sorted(pool.map(post, range(20)))
    assert statuses == [202] * 2 + [429] * 18
    assert len(lapi.get("/v1/jobs", model=model)) == 2


def test_no_pickle_and_no_unchecked_paths_in_the_code() -> None:
    """Static guard: no pickle; torch.load only with its restricted unpickler (weights_only=True, the
    pretrained .pth weights), NumPy loads always refuse pickles."""
    sources = [p for folder in ("app", "workers") for p in (REPO / folder).rglob("*.py")]
    for path in sources:
        text = Path(path).read_text()
        assert not re.search(r"^\s*(import|from)\s+(pickle|dill|joblib|cloudpickle)\b", text, re.M), path
        for call in re.findall(r"torch\.load\(.*", text):
            assert "weights_only=True" in call, (path, call)
        for call in re.findall(r"np\.load\(.*", text):
            assert "allow_pickle=False" in call, (path, call)


@pytest.mark.parametrize("ref", ["../../etc/passwd", "..%2f..%2fetc", "a" * 64])
def test_dataset_ids_never_reach_a_path(lapi: Api, ref: str) -> None:
    model = lapi.create_model("paths")
    response = lapi.http.post(f"/v1/models/{model}/tasks", json={"task": "t", "train": {"dataset": ref}})
    assert response.status_code in (404, 422), response.text


def test_a_prediction_over_the_row_limit_is_413_in_every_body(lapi: Api) -> None:
    model = lapi.create_model("rows")
    rows = np.zeros((31, 64), dtype=np.float32)
    as_json = lapi.http.post(f"/v1/models/{model}/predict", json={"task": "t", "inputs": rows.tolist()})
    as_npy = lapi.http.post(f"/v1/models/{model}/predict", params={"task": "t"}, content=lapi.npy_bytes(rows),
                            headers={"content-type": "application/x-npy"})
    for response in (as_json, as_npy):
        assert response.status_code == 413 and "LIFELONG_MAX_PREDICT_ROWS" in response.json()["detail"], response.text
    within = lapi.http.post(f"/v1/models/{model}/predict", json={"task": "t", "inputs": rows[:30].tolist()})
    assert within.status_code == 404  # past the limit check: the model has no task "t"
