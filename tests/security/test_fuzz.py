"""schemathesis against the live OpenAPI of a real API: every operation, bounded examples, zero 5xx.

The short profile here runs in CI; the long one is the same command with more examples per operation
(`LIFELONG_FUZZ_EXAMPLES=200 .venv/bin/python -m pytest -q tests/security/test_fuzz.py`). The API
runs with an admin key, so every operation is reached past auth, and path parameters point at a
model, version, dataset, job and (spare) key that exist, so operations get past 404. No worker runs: queued jobs
pile up to the active-jobs limit, which schemathesis must then see answered with 429, not 5xx.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import Service, free_port, mlp_payload, npz_bytes, service_env
from tests.faults.conftest import TALLY
from tests.security.conftest import run_cli

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES = int(os.environ.get("LIFELONG_FUZZ_EXAMPLES", "8"))

pytestmark = pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is not installed in this venv")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str, Path]]:
    """The API with an admin key, and a config that points path parameters at things that exist."""
    var_dir = tmp_path_factory.mktemp("fuzzed") / "var"
    tokens = {}
    for name in ("fuzzer", "sacrificial"):
        created = run_cli(var_dir, "keys", "create", "--scope", "admin", "--name", name)
        assert created.returncode == 0, created.stderr
        tokens[name] = created.stdout.strip()
    running = Service(var_dir=var_dir, port=free_port(), env={"LIFELONG_MAX_UPLOAD_BYTES": str(1 << 20)})
    running.start("api", "api", "--port", str(running.port))
    running.wait_healthy()
    with running.client() as http:
        http.headers["Authorization"] = f"Bearer {tokens['fuzzer']}"
        rng = np.random.default_rng(0)
        data = npz_bytes(x=rng.random((32, 64), dtype=np.float32), y=rng.integers(0, 3, 32))
        dataset = http.post("/v1/datasets", files={"file": ("d.npz", data)}).json()["id"]
        assert http.post("/v1/models", json=mlp_payload("fuzzed")).status_code == 201
        job = http.post("/v1/models/fuzzed/tasks", json={"task": "t", "train": {"dataset": dataset}}).json()["id"]
        keys = {k["name"]: k["id"] for k in http.get("/v1/keys").json()}
    config = var_dir.parent / "schemathesis.toml"
    config.write_text(
        "[parameters]\n"
        f'"path.name" = "fuzzed"\n"path.number" = 0\n"path.job_id" = "{job}"\n'
        f'"path.dataset_id" = "{dataset}"\n"path.key_id" = {keys["sacrificial"]}\n'
    )
    yield running, tokens["fuzzer"], config
    running.stop()


def fuzz(service: Service, token: str, config: Path) -> subprocess.CompletedProcess[str]:
    command = [
        str(SCHEMATHESIS), "--config-file", str(config), "run", f"{service.url}/openapi.json",
        "--checks", "not_a_server_error",
        "--header", f"Authorization: Bearer {token}", "--max-examples", str(EXAMPLES), "--seed", "0",
        "--workers", "2", "--request-timeout", "30", "--suppress-health-check", "all",
        "--generation-database", "none", "--no-color", "--phases", "examples,coverage,fuzzing",
    ]
    return subprocess.run(command, cwd=service.var_dir.parent, env=service_env(service.var_dir), text=True,
                          capture_output=True, timeout=600)


def test_no_server_errors_on_any_operation(fuzzed) -> None:
    service, token, config = fuzzed
    done = fuzz(service, token, config)
    assert done.returncode == 0, f"{done.stdout[-8000:]}\n{done.stderr[-2000:]}\n{service.logs()}"
    selected = re.search(r"Selected: (\d+)/(\d+)", done.stdout)
    tested = re.search(r"Tested: (\d+)", done.stdout)
    assert selected and tested and int(tested.group(1)) == int(selected.group(2)) >= 20, done.stdout
    assert "5xx" not in done.stdout and "Server error" not in done.stdout
    cases = re.search(r"(\d+) generated", done.stdout)
    TALLY["requests sent"] += int(cases.group(1)) if cases else 0
    TALLY["schemathesis test cases (all operations)"] += int(cases.group(1)) if cases else 0
    TALLY["schemathesis 5xx responses"] += 0
