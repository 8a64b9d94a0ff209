"""docker-compose.yml and docker/ agree with the code: no Docker engine runs here to build them, so
these checks read them. Every setting they pass is one the service reads, every command they run
parses, every long-running service has a healthcheck, and the workers take the queues they claim.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from app.cli import cli
from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def _dockerfile(service: dict[str, Any]) -> str | None:
    build = service.get("build")
    return (REPO / build["dockerfile"]).read_text() if build else None


def _cmd(dockerfile: str) -> list[str]:
    match = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert match, "no CMD"
    return yaml.safe_load(match.group(1))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    return dict(env) if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_long_running_service_has_a_healthcheck(name: str) -> None:
    service = SERVICES[name]
    if service.get("restart") == "no":  # the one-shot migration
        return
    dockerfile = _dockerfile(service)
    assert "healthcheck" in service or (dockerfile is not None and "\nHEALTHCHECK " in dockerfile), name


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_setting_passed_is_one_the_service_reads(name: str) -> None:
    known = {f"LIFELONG_{field.upper()}" for field in Settings.model_fields}
    passed = {key for key in _environment(SERVICES[name]) if key.startswith("LIFELONG_")}
    dockerfile = _dockerfile(SERVICES[name]) or ""
    passed |= set(re.findall(r"\b(LIFELONG_[A-Z_]+)=", dockerfile))
    assert passed <= known, passed - known


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_lifelong_command_parses(name: str) -> None:
    service = SERVICES[name]
    command = service.get("command")
    if command is None and _dockerfile(service) is not None:
        command = _cmd(_dockerfile(service))
    if isinstance(command, str):
        command = shlex.split(command)
    if not command or command[0] != "lifelong":
        return
    # --help after the options: typer parses (and rejects unknown options) before it prints help.
    result = CliRunner().invoke(cli, [*command[1:], "--help"])
    assert result.exit_code == 0, (name, command, result.output)


def test_workers_take_the_queue_of_their_hardware() -> None:
    cpu, gpu = _dockerfile(SERVICES["worker-cpu"]), _dockerfile(SERVICES["worker-gpu"])
    assert _cmd(cpu)[-2:] == ["--queues", "cpu"] and "LIFELONG_WORKER_DEVICE=cpu" in cpu
    assert _cmd(gpu)[-2:] == ["--queues", "gpu"] and "LIFELONG_WORKER_DEVICE=cuda" in gpu
    devices = SERVICES["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "ARG BASE=lifelong-base-cuda" in gpu


def test_every_image_shares_the_base_and_its_pinned_torch() -> None:
    base = (REPO / "docker" / "base.Dockerfile").read_text()
    pinned = re.search(r'"torch==([0-9.]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert f"torch=={pinned}" in base
    for path in (REPO / "docker").glob("*.Dockerfile"):
        if path.name != "base.Dockerfile":
            assert "FROM ${BASE}" in path.read_text(), path.name
