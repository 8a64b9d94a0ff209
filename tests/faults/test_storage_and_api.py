"""Store failures and a killed API, with real processes: a worker whose blob writes fail (a full disk)
fails the job cleanly while the API keeps answering; an API killed in the middle of an upload leaves
no partial dataset, and the restarted API serves everything as before."""

from __future__ import annotations

import signal
import socket

from tests.faults.conftest import FAULT_ENV, finish_scenario


def test_full_disk_fails_the_job_cleanly(service_factory, fault_api, tally, tmp_path) -> None:
    var_dir = tmp_path / "var"
    service = service_factory(var_dir, env={**FAULT_ENV, "LIFELONG_INJECT_FAULTS": "store_write"})
    api = fault_api(service)
    model = api.create_model("full")
    task = api.digits[0]
    job = api.wait_job(api.submit_task(model, task, epochs=1)["id"])
    tally["faults injected: blob store write error (ENOSPC)"] += 1
    assert job["state"] == "failed" and job["error"]["type"] == "storage", job
    assert "No space left" in job["error"]["message"]
    assert api.get(f"/v1/models/{model}")["head"] == 0
    assert api.http.get("/readyz").status_code == 200
    assert len(api.get(f"/v1/models/{model}/versions")) == 1
    assert service.processes["worker"].poll() is None
    tally["jobs submitted"] += 1
    finish_scenario(var_dir, "every blob write of the worker fails with ENOSPC: the job failed with error type"
                    " `storage`, no version was written, the API kept answering")


def test_api_killed_mid_upload_leaves_no_partial_dataset(service_factory, fault_api, tally, tmp_path) -> None:
    var_dir = tmp_path / "var"
    service = service_factory(var_dir, env=FAULT_ENV)
    api = fault_api(service)
    task = api.digits[0]
    before = api.get("/v1/datasets")
    payload = api.npz_bytes(x=task.x_train, y=task.y_train)
    head = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.npz"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n")
    body = head + payload + b"\r\n--B--\r\n"
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/datasets HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        sock.sendall(body[: len(body) // 2])
        tally["requests sent"] += 1
        service.processes["api"].send_signal(signal.SIGKILL)
        service.processes["api"].wait()
    tally["faults injected: SIGKILL of the API mid-upload"] += 1
    service.start("api", "api", "--port", str(service.port))
    service.wait_healthy()
    assert api.get("/v1/datasets") == before
    # The whole upload, sent again, makes one complete dataset.
    stored = api.upload(payload, "a.npz")
    assert stored["n"] == len(task.x_train)
    assert len(api.get("/v1/datasets")) == len(before) + 1
    finish_scenario(var_dir, "SIGKILL of the API halfway through a multipart upload: no dataset row or blob"
                    " appeared; after a restart the same upload made one complete dataset")


def test_full_disk_in_the_api_is_503(tmp_path, digits) -> None:
    """The API's own blob writes failing (an upload on a full disk): 503 with a reason, then it recovers."""
    from fastapi.testclient import TestClient

    from app.faults import FullDiskBlobStore
    from app.main import create_app
    from app.settings import Settings
    from app.store import LocalBlobStore
    from tests.conftest import npz_bytes

    app = create_app(Settings(var_dir=tmp_path / "var"))
    with TestClient(app) as http:
        healthy_store = app.state.store
        app.state.store = FullDiskBlobStore(healthy_store.root)
        data = npz_bytes(x=digits[0].x_test, y=digits[0].y_test)
        refused = http.post("/v1/datasets", files={"file": ("d.npz", data)})
        assert refused.status_code == 503 and "No space left" in refused.json()["detail"]
        assert http.get("/v1/datasets").json() == []
        app.state.store = LocalBlobStore(healthy_store.root)
        assert http.post("/v1/datasets", files={"file": ("d.npz", data)}).status_code == 201
