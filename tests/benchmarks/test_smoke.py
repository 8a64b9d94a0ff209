"""CI runs each benchmark in its tiny `smoke` profile: the code paths and the outputs, not the figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run_benchmark(module: str, out: Path, *extra: str) -> None:
    command = [sys.executable, "-m", module, "--profile", "smoke", "--out", str(out), *extra]
    subprocess.run(command, check=True, timeout=300)


def test_continual_smoke_writes_json_table_and_plots(tmp_path: Path) -> None:
    run_benchmark("benchmarks.continual", tmp_path)
    results = json.loads((tmp_path / "continual.json").read_text())
    variants = results["sequences"]["split_digits"]
    assert {"finetune", "l2", "ewc", "si", "lwf", "mas", "mas_omega_test", "mas_local"} <= variants.keys()
    for entry in variants.values():
        run = entry["runs"][0]
        assert len(run["matrix"]) == 2 and 0.0 <= run["average_accuracy"] <= 1.0
    state = {name: entry["summary"]["state_bytes"]["mean"] for name, entry in variants.items()}
    assert state["mas"] > 0 and state["lwf"] == 0
    assert "| mas |" in (tmp_path / "continual.md").read_text()
    assert (tmp_path / "continual_forgetting.png").stat().st_size > 1000


@pytest.mark.timeout(300)
def test_speed_smoke_writes_every_section(tmp_path: Path) -> None:
    run_benchmark("benchmarks.speed", tmp_path, "--service")
    results = json.loads((tmp_path / "speed.json").read_text())
    assert set(results["importance"]) == {"mlp_64_256_256", "mlp_784_1000_1000", "cnn_1x8x8_16_32"}
    for entry in results["importance"].values():
        assert all(entry[k]["samples_per_s"] > 0 for k in ("per_sample", "batch", "vmap_over_grad", "python_loop"))
    assert all(e["mas_vs_finetune"] > 0 for e in results["training_step"].values())
    service = results["service"]["embedded"]
    assert service["predictions"]["one_row"]["p50_ms"] > 0 and service["pickup"]["jobs"] == 2
    assert 0 < service["storage"]["importance_version_bytes"] < service["storage"]["train_version_bytes"]
    assert "Against the targets" in (tmp_path / "speed.md").read_text()
