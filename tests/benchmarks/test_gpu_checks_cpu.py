"""benchmarks.gpu_checks on the CPU in its quick profile: the same code a GPU host runs, so it is known to work
before a GPU run is spent on it; and `--device cuda` refusing at once where torch sees no GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def run_checks(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu_checks", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("sections", "service_jobs"), [("core", ""), ("omega", ""), ("service", "minilm"),
                                                         ("service", "efficientnet_lite0")])
def test_every_section_passes_on_the_cpu_in_the_quick_profile(tmp_path: Path, sections: str,
                                                              service_jobs: str) -> None:
    """Each section a run of its own (`--sections`), each service job too (`--service-jobs`), each a test of its
    own: together, every section and job."""
    jobs = ["--service-jobs", service_jobs] if service_jobs else []
    done = run_checks("--device", "cpu", "--quick", "--sections", sections, *jobs, "--out", str(tmp_path),
                      timeout=220)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gpu_checks on cpu (quick): PASS" in done.stdout, done.stdout

    results = json.loads((tmp_path / "gpu_checks.json").read_text())
    ran = results["sections"]
    assert results["passed"] and set(ran) == set(sections.split(","))
    assert all(section["passed"] and section["wall_s"] > 0 for section in ran.values())
    if "core" in ran:
        assert ran["core"]["precision"] == "fp32" and ran["core"]["checks"]["head_a_bit_for_bit"]
    elif "omega" in ran:
        assert ran["omega"]["cases"]
        for case in ran["omega"]["cases"].values():
            assert case["dtype"] == ["torch.float32"] and case["max_relative_difference"] <= ran["omega"]["rtol"]
    else:
        assert list(ran["service"]["jobs"]) == [service_jobs]
        for job in ran["service"]["jobs"].values():
            assert job["state"] == "succeeded" and job["device"] == "cpu" and job["predicted"] == job["expected"]
    assert results["wall_s"] >= sum(section["wall_s"] for section in ran.values()) * 0.99


def test_an_unknown_service_job_is_refused_with_the_choices(tmp_path: Path) -> None:
    done = run_checks("--device", "cpu", "--sections", "service", "--service-jobs", "bert", "--out", str(tmp_path),
                      timeout=60)
    assert done.returncode == 2
    assert "--service-jobs must be some of minilm, efficientnet_lite0" in done.stderr
    assert not (tmp_path / "gpu_checks.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_fails_fast_with_a_plain_message(tmp_path: Path) -> None:
    done = run_checks("--device", "cuda", "--out", str(tmp_path), timeout=60)
    assert done.returncode == 2
    assert "sees no CUDA GPU" in done.stderr and "--device cpu" in done.stderr
    assert not (tmp_path / "gpu_checks.json").exists()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("ending", ["close", "stop"])
def test_the_running_service_leaves_no_api_or_worker_behind(tmp_path: Path, ending: str) -> None:
    """serve starts its API and worker in sessions of their own: ending serve's group alone left them running."""
    import os
    import time

    from app.jobs.service import _process_alive
    from benchmarks.gpu_checks import RunningService, child_processes

    service = RunningService(tmp_path, torch.device("cpu"))
    try:
        service.wait_healthy()
        children = child_processes(service.process.pid)
        assert len(children) == 2  # the API and the worker
    finally:
        getattr(service, ending)()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_process_alive(pid) for pid in children):
        time.sleep(0.1)
    assert not any(_process_alive(pid) for pid in children), [os.path.exists(f"/proc/{pid}") for pid in children]


def _processes_on_port(port: int) -> list[int]:
    """Processes whose command line names `--port <port>` (serve and the API it starts), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                words = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue  # gone since
            if b"--port" in words and words[words.index(b"--port") + 1:][:1] == [str(port).encode()]:
                found.append(int(entry.name))
    return found


@pytest.mark.timeout(120)
@pytest.mark.parametrize("after_s", [0.0, 1.5, 4.0])
def test_closing_a_service_still_starting_leaves_nothing_behind(tmp_path: Path, after_s: float) -> None:
    """Closed at points of serve's start (before, while and after it starts its API and worker), nothing with its
    port is left running. The leak that led to it (an API started after `close` had read serve's children,
    seen once on a loaded machine) has a narrow window: ten such closes without serve being stopped first
    left nothing either, so this checks the closing, not that window."""
    import time

    from benchmarks.gpu_checks import RunningService

    service = RunningService(tmp_path, torch.device("cpu"))
    time.sleep(after_s)
    service.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _processes_on_port(service.port):
        time.sleep(0.2)
    assert _processes_on_port(service.port) == []
