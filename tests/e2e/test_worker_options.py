"""`lifelong worker` refuses a queue it does not know, and a device this machine lacks, before it
starts consuming: a misconfigured GPU host must not quietly train on its CPU."""

from __future__ import annotations

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
