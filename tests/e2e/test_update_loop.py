"""The README's update loop (scripts/update_loop.sh) runs as written against the real service: drift found,
a careless update kept as candidate for its flips, shadowed, a safe update promoted, events received."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from scripts.cluster import free_port
from tests.conftest import REPO, Service, unique


@pytest.mark.skipif(shutil.which("jq") is None or shutil.which("curl") is None,
                    reason="the walk-through needs jq and curl (Debian packages jq, curl; .ci/run installs them)")
def test_the_update_loop_runs_as_written(service: Service, tmp_path) -> None:
    env = {**os.environ, "API": service.url, "OUT": str(tmp_path / "loop"), "PORT": str(free_port()),
           "MODEL": unique("loop"), "PY": sys.executable}
    done = subprocess.run(["bash", str(REPO / "scripts" / "update_loop.sh")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert '"drift":true' in out  # step 2: digits 4-5 are unlike both tasks learned
    refused = next(json.loads(line) for line in out.splitlines() if '"violations"' in line)  # step 3
    assert refused["promoted"] is False and refused["alias"] == "candidate"
    assert {v["rule"] for v in refused["violations"]} & {"max_negative_flip_rate", "max_forgetting"}
    events = [json.loads(line) for line in (tmp_path / "loop" / "events.jsonl").read_text().splitlines()]
    assert {"drift.detected", "alias.moved"} <= {e["event"] for e in events}
