"""schemathesis against the live OpenAPI of a real API: every operation, bounded examples, every check.

Every check schemathesis has runs (`--checks all`), not only "no 5xx": the status, content type, headers
and body of each answer must be the ones the OpenAPI documents, a request the schema calls invalid must be
refused, and one it calls valid must be accepted, so the OpenAPI says exactly what the service does. The
short profile here runs in CI; the long one is the same command with more examples per operation
(`LIFELONG_FUZZ_EXAMPLES=200 .venv/bin/python -m pytest -q tests/security/test_fuzz.py`). The API runs with
an admin key, so every operation is reached past auth, and path parameters point at a model, version,
dataset, job and (spare) key that exist, so operations get past 404. No worker runs: queued jobs pile up
to the active-jobs limit, which schemathesis must then see answered with 429.
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

# Where a request that the schema calls valid may still be refused 422: what it names must fit what is
# stored or what code decides, which no JSON Schema can say. Inline inputs must have the model's
# input_shape and labels its number of classes; a GET prediction's `inputs` is JSON inside a query
# string; an uploaded file must parse as a dataset; an architecture is checked by its kind's own code
# (app/architectures: each kind's options, and the parameter limit); a task or refresh needs a base
# version with the task it names; and query parameters cannot say "not both version and alias" (the
# JSON bodies do). Everywhere else, a schema-valid request is accepted.
SEMANTIC_422 = ("POST /v1/models", "POST /v1/datasets", "POST /v1/models/{name}/tasks",
                "POST /v1/models/{name}/importance", "GET /v1/models/{name}/predict",
                "POST /v1/models/{name}/predict")
POSITIVE_STATUSES = '["2xx", "3xx", "401", "403", "404", "409", "429", "422"]'


def schemathesis_config(parameters: dict[str, str | int]) -> str:
    lines = ["[parameters]", *(f'"{name}" = {value!r}'.replace("'", '"') for name, value in parameters.items())]
    # DELETE /v1/models/{name} removes a model of its own, so the other operations keep theirs.
    lines += ["", "[[operations]]", 'include-name = "DELETE /v1/models/{name}"',
              'parameters = { "path.name" = "spare" }']
    # An upload is one file, and any bytes are a file: a `file` negated into a number is sent as a part
    # holding the number's digits, a valid one-column .csv, so it may be stored (201). What the schema
    # can refuse, the service does (no `file` part: 422; a field that is not a file: 422).
    lines += ["", "[[operations]]", 'include-name = "POST /v1/datasets"',
              'checks.negative_data_rejection.expected-statuses = ["201", "400", "401", "403", "404", "409", "413",'
              ' "415", "422", "429"]']
    for name in SEMANTIC_422:
        lines += ["", "[[operations]]", f'include-name = "{name}"',
                  f"checks.positive_data_acceptance.expected-statuses = {POSITIVE_STATUSES}"]
    return "\n".join(lines) + "\n"


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
        for model in ("fuzzed", "spare"):
            assert http.post("/v1/models", json=mlp_payload(model)).status_code == 201
        job = http.post("/v1/models/fuzzed/tasks", json={"task": "t", "train": {"dataset": dataset}}).json()["id"]
        keys = {k["name"]: k["id"] for k in http.get("/v1/keys").json()}
    config = var_dir.parent / "schemathesis.toml"
    config.write_text(schemathesis_config({"path.name": "fuzzed", "path.number": 0, "path.job_id": job,
                                           "path.dataset_id": dataset, "path.key_id": keys["sacrificial"]}))
    yield running, tokens["fuzzer"], config
    running.close()


def fuzz(service: Service, token: str, config: Path, phases: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(SCHEMATHESIS), "--config-file", str(config), "run", f"{service.url}/openapi.json",
        # All of them. use_after_free and ensure_resource_availability act in the stateful phase, on the
        # links schemathesis infers between operations (a model created, then read, used, deleted).
        # object_level_authorization finds nothing to do, rightly: it compares what identities that own
        # different objects may read, and here every key reads every object (a key has a scope, not
        # an owner; API.md, Auth), so there is one identity, an admin.
        "--checks", "all",
        "--header", f"Authorization: Bearer {token}", "--max-examples", str(EXAMPLES), "--seed", "0",
        "--workers", "2", "--request-timeout", "30", "--suppress-health-check", "all",
        "--generation-database", "none", "--no-color", "--phases", phases,
    ]
    return subprocess.run(command, cwd=service.var_dir.parent, env=service_env(service.var_dir), text=True,
                          capture_output=True, timeout=600)


# Two runs over the same API, so that no one test runs every phase: the examples the OpenAPI gives and its
# coverage of every constraint (most of the time), then random requests and the stateful phase's chains.
@pytest.mark.parametrize("phases", ["examples,coverage", "fuzzing,stateful"])
def test_every_check_passes_on_every_operation(fuzzed, phases: str) -> None:
    service, token, config = fuzzed
    done = fuzz(service, token, config, phases)
    assert done.returncode == 0, f"{done.stdout[-8000:]}\n{done.stderr[-2000:]}\n{service.logs()}"
    selected = re.search(r"Selected: (\d+)/(\d+)", done.stdout)
    tested = re.search(r"Tested: (\d+)", done.stdout)
    assert selected and tested and int(tested.group(1)) == int(selected.group(2)) >= 20, done.stdout
    assert "5xx" not in done.stdout and "Server error" not in done.stdout
    cases = re.search(r"(\d+) generated", done.stdout)
    TALLY["requests sent"] += int(cases.group(1)) if cases else 0
    TALLY["schemathesis test cases (all operations, all checks)"] += int(cases.group(1)) if cases else 0
    TALLY["schemathesis failures"] += 0
