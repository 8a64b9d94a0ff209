"""Fixtures for the service tests: a real API (uvicorn) and a real worker, as subprocesses over a temp dir.

One service is shared by tests/api and tests/e2e for the whole session (starting one costs seconds);
tests that need their own (restart) start it with `start_service`. Everything is real: SQLite file,
filesystem broker, blob directory, HTTP over loopback. Waiting is polling with a deadline, never a
bare sleep. The unit tests in tests/unit use none of this.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.architectures.text import _hide_broken_torchvision
from scripts.cluster import free_port

# transformers decides once, when it is first imported, whether torchvision is usable, and the CUDA-built
# torchvision on these machines is not. Marked absent here, before any test can import transformers, so
# that no test depends on another having built a text trunk first (xdist workers run them in any order).
_hide_broken_torchvision()

REPO = Path(__file__).resolve().parents[1]
JOB_DEADLINE_S = 120.0
FINISHED = ("succeeded", "failed", "cancelled")

# Fast polling so tests wait milliseconds, not seconds; one torch thread so the worker does not
# fight the test process for a 2-core machine.
FAST_ENV = {
    "LIFELONG_BROKER_POLL_S": "0.05",
    "LIFELONG_PROGRESS_INTERVAL_S": "0.05",
    "LIFELONG_CANCEL_POLL_S": "0.05",
    "LIFELONG_TORCH_THREADS": "1",
    "LIFELONG_MAX_UPLOAD_BYTES": str(4 << 20),
    # The tests' webhook receivers listen on 127.0.0.1, which a hook may only reach with this set.
    "LIFELONG_WEBHOOK_ALLOW_PRIVATE": "true",
}


_CHILD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGCHLD}


def default_signals() -> list[str]:
    """Unblock SIGINT, SIGTERM and SIGCHLD and give SIGINT Python's handler; what had to be put back.
    Processes a test starts inherit both: a CLI with SIGINT ignored does not stop at Ctrl-C."""
    changed = [f"{s.name} blocked" for s in signal.pthread_sigmask(signal.SIG_BLOCK, set()) & _CHILD_SIGNALS]
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _CHILD_SIGNALS)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        changed.append("SIGINT ignored")
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return changed


# A suite started in the background by a non-interactive shell (`make test &`, nohup … &) begins with SIGINT
# ignored (POSIX: such jobs ignore it), and so would every process it starts; the Ctrl-C tests then fail.
default_signals()


@pytest.fixture(autouse=True)
def signals_left_as_found(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that leaves these signals blocked or SIGINT ignored is named in a warning, and the defaults
    are put back, so that the processes later tests start behave."""
    yield
    changed = default_signals()
    if changed:
        warnings.warn(f"{request.node.nodeid} left {', '.join(changed)}; put back", stacklevel=1)


def wait_for(condition: Callable[[], Any], *, deadline_s: float, what: str, every_s: float = 0.05) -> Any:
    """Poll until `condition()` returns something truthy, or fail after the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s} s waiting for {what}")
        time.sleep(every_s)


def service_env(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFELONG_")}
    env.update(FAST_ENV, LIFELONG_VAR_DIR=str(var_dir), PYTHONPATH=str(REPO), **extra)
    return env


def descendants(pid: int) -> list[int]:
    """Every process under `pid` (its children, theirs, …), from /proc."""
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError):
                for child in map(int, Path(f"/proc/{pid}/task/{task}/children").read_text().split()):
                    found += [child, *descendants(child)]
    return found


@dataclass
class Service:
    """A running API (and worker, or `lifelong serve`) over one var dir, with an HTTP client to it."""

    var_dir: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0)

    def start(self, name: str, *args: str) -> None:
        log = open(self.var_dir.parent / f"{self.var_dir.name}-{name}.log", "ab")  # noqa: SIM115 - child keeps it
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args], cwd=self.var_dir.parent,
            env=service_env(self.var_dir, **self.env), stdout=log, stderr=subprocess.STDOUT,
        )

    def wait_healthy(self) -> None:
        def healthy() -> bool:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise AssertionError(f"{name} exited with {process.returncode}:\n{self.logs()}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, deadline_s=60, what="the API to answer /healthz")

    def stop(self, signum: int = signal.SIGTERM) -> dict[str, int]:
        codes = {}
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signum)
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
        return codes

    def close(self) -> dict[str, int]:
        """Teardown, when nothing afterwards looks at the folder: the worker is killed with its pool
        process rather than shut down warm, which waits about 6 s on Celery's own timers (the consumer's
        2 s poll, billiard's 1 s sleeps) per service; the API stops as usual. Tests of shutdown call stop()."""
        worker = self.processes.get("worker")
        if worker is not None and worker.poll() is None:
            for pid in [*descendants(worker.pid), worker.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return self.stop()

    def logs(self) -> str:
        parts = []
        for name in self.processes:
            path = self.var_dir.parent / f"{self.var_dir.name}-{name}.log"
            if path.exists():
                parts.append(f"--- {name} ---\n{path.read_text(errors='replace')[-6000:]}")
        return "\n".join(parts)


def start_service(var_dir: Path, *, serve: bool = False, env: dict[str, str] | None = None) -> Service:
    """The API and a worker as two processes, or both under `lifelong serve`; `env` adds settings."""
    var_dir.mkdir(parents=True, exist_ok=True)
    service = Service(var_dir=var_dir, port=free_port(), env=env or {})
    if serve:
        service.start("serve", "serve", "--port", str(service.port))
    else:
        service.start("api", "api", "--port", str(service.port))
        service.wait_healthy()  # the API migrated the database; the worker finds it ready
        service.start("worker", "worker")
    service.wait_healthy()
    return service


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = start_service(tmp_path_factory.mktemp("service") / "var")
    yield running
    running.close()


@pytest.fixture(scope="session")
def client(service: Service) -> Iterator[httpx.Client]:
    with service.client() as http:
        yield http


# --- payloads and data ---------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def mlp_payload(name: str, hidden: list[int] | None = None, seed: int = 0,
                promotion: dict[str, Any] | None = None) -> dict[str, Any]:
    """A model's body; `promotion` only when given (the server's default is guarded)."""
    architecture = {"kind": "mlp", "input_shape": [64], "hidden": hidden or [32]}
    payload = {"name": name, "architecture": architecture, "seed": seed}
    return payload if promotion is None else {**payload, "promotion": promotion}


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@dataclass(frozen=True)
class DigitsTask:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@pytest.fixture(scope="session")
def digits() -> list[DigitsTask]:
    from app.mas.data import split_digits

    return [
        DigitsTask(t.name, t.x_train.numpy(), t.y_train.numpy(), t.x_test.numpy(), t.y_test.numpy())
        for t in split_digits(n_tasks=3, seed=0)
    ]


class Api:
    """The service as tests drive it: the HTTP client plus the few steps most tests repeat."""

    npz_bytes = staticmethod(npz_bytes)
    npy_bytes = staticmethod(npy_bytes)
    unique = staticmethod(unique)
    wait_for = staticmethod(wait_for)

    def __init__(self, http: httpx.Client, digits: list[DigitsTask]):
        self.http, self.digits = http, digits

    def upload(self, content: bytes, filename: str = "data.npz") -> dict[str, Any]:
        response = self.http.post("/v1/datasets", files={"file": (filename, content)})
        assert response.status_code == 201, response.text
        return response.json()

    def upload_task_data(self, task: DigitsTask) -> tuple[str, str]:
        train = self.upload(npz_bytes(x=task.x_train, y=task.y_train), f"{task.name}-train.npz")
        evaluation = self.upload(npz_bytes(x=task.x_test, y=task.y_test), f"{task.name}-eval.npz")
        return train["id"], evaluation["id"]

    def create_model(self, prefix: str = "m", **kwargs: Any) -> str:
        name = unique(prefix)
        response = self.http.post("/v1/models", json=mlp_payload(name, **kwargs))
        assert response.status_code == 201, response.text
        return name

    def task_body(self, task: DigitsTask, **overrides: Any) -> dict[str, Any]:
        train, evaluation = self.upload_task_data(task)
        return {"task": task.name, "train": {"dataset": train}, "eval": {"dataset": evaluation},
                "epochs": 5, "batch_size": 32, "lr": 0.05, **overrides}

    def submit_task(self, model: str, task: DigitsTask, **overrides: Any) -> dict[str, Any]:
        response = self.http.post(f"/v1/models/{model}/tasks", json=self.task_body(task, **overrides))
        assert response.status_code == 202, response.text
        assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
        return response.json()

    def wait_job(self, job_id: str, *, deadline_s: float = JOB_DEADLINE_S) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            job = self.http.get(f"/v1/jobs/{job_id}").json()
            return job if job["state"] in FINISHED else None

        return wait_for(finished, deadline_s=deadline_s, what=f"job {job_id} to finish", every_s=0.1)

    def learn(self, model: str, task: DigitsTask, **overrides: Any) -> int:
        """Train a task to completion and return the new version's number."""
        job = self.wait_job(self.submit_task(model, task, **overrides)["id"])
        assert job["state"] == "succeeded", job
        return job["result"]["version"]

    def refresh(self, model: str, **body: Any) -> dict[str, Any]:
        response = self.http.post(f"/v1/models/{model}/importance", json=body)
        assert response.status_code == 202, response.text
        return self.wait_job(response.json()["id"])

    def predict(self, model: str, task: str, inputs: np.ndarray, **extra: Any) -> dict[str, Any]:
        response = self.http.post(f"/v1/models/{model}/predict",
                                  json={"task": task, "inputs": inputs.tolist(), **extra})
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="session")
def api(client: httpx.Client, digits: list[DigitsTask]) -> Api:
    return Api(client, digits)


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Start extra services over directories of this test; all are stopped at its end."""
    started: list[Service] = []

    def start(var_dir: Path | None = None, *, serve: bool = False, env: dict[str, str] | None = None) -> Service:
        running = start_service(var_dir or tmp_path / "var", serve=serve, env=env)
        started.append(running)
        return running

    yield start
    for running in started:
        running.close()


@pytest.fixture
def api_factory(digits: list[DigitsTask]) -> Iterator[Callable[[Service], Api]]:
    """An `Api` over another service (one started with `service_factory`)."""
    clients: list[httpx.Client] = []

    def make(running: Service) -> Api:
        clients.append(running.client())
        return Api(clients[-1], digits)

    yield make
    for http in clients:
        http.close()
