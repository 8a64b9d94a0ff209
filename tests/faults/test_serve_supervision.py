"""`lifelong serve` keeps serving when its worker dies, and a second serve on the same folder refuses
instead of resetting the first one's running job (issue 13, items 4 and 6)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.cli import STARTUP_S
from benchmarks.gpu_checks import child_processes
from tests.conftest import free_port, service_env


def _children(pid: int) -> dict[str, int]:
    """The serve process's children by role ("api", "worker"): its children (benchmarks.gpu_checks reads them
    from /proc) named by the `app.cli` command each runs."""
    found = {}
    for child in child_processes(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone since
        if b"app.cli" in cmdline:
            found[cmdline[cmdline.index(b"app.cli") + 1].decode()] = child
    return found


def test_a_killed_worker_is_started_again_and_the_api_stays_up(service_factory, api_factory, tmp_path) -> None:
    served = service_factory(tmp_path / "var", serve=True)
    api = api_factory(served)
    model = api.create_model("supervised")
    job = api.submit_task(model, api.digits[0], epochs=5000, batch_size=8)["id"]
    api.wait_for(lambda: api.get(f"/v1/jobs/{job}")["state"] == "running", deadline_s=60, what="a running job")

    # A child that exits within its first STARTUP_S seconds counts as failing to start (serve then stops):
    # the clock starts when the worker is first seen, which is after serve started it.
    worker = _children(served.processes["serve"].pid)["worker"]
    seen = time.monotonic()
    api.wait_for(lambda: time.monotonic() - seen > STARTUP_S + 1, deadline_s=30, what="the worker to count as started")
    os.killpg(worker, signal.SIGKILL)  # the worker and its pool process, as an OOM kill would
    assert api.http.get("/healthz").status_code == 200  # the API never went away
    again = api.wait_for(lambda: (w := _children(served.processes["serve"].pid).get("worker")) != worker and w,
                         deadline_s=30, what="a new worker")
    assert again and served.processes["serve"].poll() is None
    # The new worker resets the killed job (that attempt counts) and runs it again; new jobs run too.
    rerun = api.wait_for(lambda: (j := api.get(f"/v1/jobs/{job}"))["state"] == "running" and j["attempts"] == 2 and j,
                         deadline_s=60, what="the killed job to run again")
    assert rerun["attempts"] == 2
    assert api.http.post(f"/v1/jobs/{job}/cancel").status_code == 202
    assert api.learn(model, api.digits[1], epochs=1) == 1
    log = (served.var_dir.parent / f"{served.var_dir.name}-serve.log").read_text(errors="replace")
    assert "the worker exited with -9; starting it again" in log


def test_a_second_serve_on_the_same_folder_refuses_and_leaves_the_running_job_alone(
        service_factory, api_factory, tmp_path) -> None:
    var_dir = tmp_path / "var"
    api = api_factory(service_factory(var_dir, serve=True))
    model = api.create_model("single")
    job = api.submit_task(model, api.digits[0], epochs=5000, batch_size=8)["id"]
    api.wait_for(lambda: (api.get(f"/v1/jobs/{job}")["progress"] or {}).get("done", 0) > 0, deadline_s=60,
                 what="the job to make progress")

    second = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--port", str(free_port())],
                            cwd=var_dir.parent, env=service_env(var_dir), capture_output=True, text=True, timeout=120)
    assert second.returncode != 0
    assert "another worker already runs on this folder's embedded broker" in second.stderr, second.stderr
    running = api.get(f"/v1/jobs/{job}")
    assert running["state"] == "running" and running["attempts"] == 1, running
    done_before = running["progress"]["done"]
    api.wait_for(lambda: api.get(f"/v1/jobs/{job}")["progress"]["done"] > done_before, deadline_s=30,
                 what="the first serve's job to go on")
    assert api.http.post(f"/v1/jobs/{job}/cancel").status_code == 202
