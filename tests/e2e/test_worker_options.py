"""`lifelong worker` refuses a queue it does not know, and a device this machine lacks, before it
starts consuming: a misconfigured GPU host must not quietly train on its CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import service_env


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--queues", "tpu"], {}, "queues must be some of cpu, gpu"),
    (["--queues", " , "], {}, "queues must be some of cpu, gpu"),
    (["--queues", "gpu"], {"LIFELONG_WORKER_DEVICE": "cuda"}, "torch sees no CUDA GPU"),
])
def test_worker_refuses_a_bad_setting(tmp_path: Path, args: list[str], env: dict[str, str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "app.cli", "worker", *args], env=service_env(tmp_path / "var", **env),
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in " ".join(done.stderr.replace("│", " ").split())  # typer boxes and wraps the message
    assert not (tmp_path / "var" / "lifelong.sqlite3").exists()  # refused before touching anything


@pytest.mark.parametrize(("env", "queues"), [
    ({}, "cpu,gpu"),  # the one embedded worker runs every job
    ({"LIFELONG_BROKER_URL": "redis://127.0.0.1:9/0"}, "cpu"),  # in a cluster: its device's queue (no GPU here)
    ({"LIFELONG_BROKER_URL": "redis://127.0.0.1:9/0", "LIFELONG_WORKER_QUEUES": "gpu,cpu"}, "gpu,cpu"),
])
def test_worker_default_queues(tmp_path: Path, env: dict[str, str], queues: str) -> None:
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=service_env(tmp_path / "var", **env),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        for line in worker.stdout:  # JSON log lines; the first of ours says what the worker takes
            if "worker: queues" in line:
                assert json.loads(line)["message"] == f"worker: queues {queues}, device cpu"
                break
        else:
            raise AssertionError("the worker ended without saying its queues")
    finally:
        worker.kill()
        worker.wait()
