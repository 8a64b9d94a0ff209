"""The client as its own package: it installs alone in a clean virtualenv (no torch, Celery, SQLAlchemy or
FastAPI there) and talks to a real server; its version is the API's; the docs' client example runs as
written against a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

from tests.conftest import Service

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "clients" / "python"
# What pip says when the package index cannot be reached: the only reason to skip.
UNREACHABLE = ("No matching distribution found", "Could not find a version", "Network is unreachable",
               "Failed to establish a new connection")


def test_the_client_is_versioned_with_the_api() -> None:
    client = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    service = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert client["version"] == service["version"]
    assert {re.split(r"[<>=\[ ]", spec)[0] for spec in client["dependencies"]} == {"httpx", "numpy"}


@pytest.mark.timeout(300)
def test_the_client_installs_alone_and_talks_to_a_real_server(tmp_path: Path, service: Service) -> None:
    env_dir = tmp_path / "clean"
    venv.create(env_dir, with_pip=True, system_site_packages=False)
    python = env_dir / "bin" / "python"
    clean_env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(PACKAGE)], capture_output=True,
                               text=True, timeout=240, env=clean_env, cwd=tmp_path)
    if installed.returncode != 0 and any(words in installed.stderr for words in UNREACHABLE):
        pytest.skip(f"pip could not reach a package index for httpx and numpy: {installed.stderr[-300:]}")
    assert installed.returncode == 0, installed.stderr
    script = f"""
import importlib.util
absent = [name for name in ("torch", "sqlalchemy", "celery", "fastapi", "app")
          if importlib.util.find_spec(name) is not None]
assert absent == [], absent
from lifelong_client import Client, NotFound
with Client({service.url!r}) as lifelong:
    assert lifelong.healthz()["status"] == "ok"
    lifelong.create_model("alone", {{"kind": "mlp", "input_shape": [4], "hidden": [8]}})
    assert "alone" in [model["name"] for model in lifelong.list_models()]
    try:
        lifelong.get_model("missing-model")
    except NotFound as error:
        print("refused", error.status_code)

# The progress bar (the CLI's too) without rich, as `pip install lifelong-client` has it: plain lines.
import contextlib, io
from lifelong_client import Job, ProgressBar
drawn = io.StringIO()
with contextlib.redirect_stderr(drawn), ProgressBar(epochs=4) as bar:
    bar(Job(None, {{"id": "j", "kind": "train", "model": "m", "task": "t", "state": "running",
                    "progress": {{"done": 25, "total": 40, "unit": "steps", "loss": 0.5}}}}))
assert importlib.util.find_spec("rich") is None
lines = drawn.getvalue().splitlines()
assert lines == ["job j (train t) running 25/40 steps, epoch 3/4, loss 0.5000"], lines
"""
    ran = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=120, env=clean_env,
                         cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "refused 404" in ran.stdout


def _docs_example() -> str:
    text = (REPO / "docs" / "clients.md").read_text()
    section = text.split("## Python client", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.timeout(300)
def test_the_docs_client_example_runs_as_written(tmp_path: Path, service: Service) -> None:
    made = subprocess.run([sys.executable, str(REPO / "scripts" / "make_digits.py"), "--out", "data", "--tasks", "2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    ran = subprocess.run([sys.executable, "-c", _docs_example()], cwd=tmp_path, capture_output=True, text=True,
                         timeout=240, env={**os.environ, "LIFELONG_URL": service.url})
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "404" in ran.stdout  # the example's last step: a missing model is NotFound
