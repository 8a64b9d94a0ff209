"""CI runs each benchmark in its tiny `smoke` profile: the code paths and the outputs, not the figures."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def run_benchmark(module: str, out: Path, *extra: str) -> None:
    command = [sys.executable, "-m", module, "--profile", "smoke", "--out", str(out), *extra]
    subprocess.run(command, check=True, timeout=300)


def test_continual_smoke_writes_json_table_and_plots(tmp_path: Path) -> None:
    run_benchmark("benchmarks.continual", tmp_path)
    from benchmarks.continual import VARIANTS
    from benchmarks.sequences import SEQUENCES

    results = json.loads((tmp_path / "continual.json").read_text())
    assert set(results["sequences"]) == set(SEQUENCES)  # every sequence and variant the full run reports
    assert all(set(variants) == set(VARIANTS) for variants in results["sequences"].values())
    variants = results["sequences"]["split_digits"]
    for entry in variants.values():
        run = entry["runs"][0]
        assert len(run["matrix"]) == 2 and 0.0 <= run["average_accuracy"] <= 1.0 and len(run["lambdas"]) == 2
    assert variants["mas_auto"]["lambda"] == "auto"
    assert variants["mas_auto"]["runs"][0]["lambdas"][1] in results["settings"]["auto_grid"]
    # Every method keeps its tasks' importance estimates (a later MAS task protects them); only the
    # anchored ones hold θ* and Ω while training.
    state = {name: entry["summary"]["state_bytes"]["mean"] for name, entry in variants.items()}
    training = {name: entry["summary"]["training_state_bytes"]["mean"] for name, entry in variants.items()}
    assert state["mas"] > 0 and state["lwf"] == state["finetune"] == state["mas"]
    assert training["finetune"] == 0 < training["lwf"] < training["mas"]
    table = (tmp_path / "continual.md").read_text()
    assert "| mas |" in table and "| mas_auto | auto |" in table and "λ chosen by `mas_auto`" in table
    assert (tmp_path / "continual_forgetting.png").stat().st_size > 1000
    assert all((tmp_path / f"continual_{name}_accuracy.png").is_file() for name in SEQUENCES)
    assert table.splitlines()[2].startswith("Provenance: commit")


@pytest.mark.timeout(300)
def test_defaults_smoke_reads_the_service_defaults_and_writes_both_settings(tmp_path: Path) -> None:
    """The structure of benchmarks.defaults' output, not its targets: a 1-epoch run proves nothing about them."""
    from app.learning.schemas import TaskRequest
    from benchmarks.defaults import SEQUENCE_SOURCES

    run_benchmark("benchmarks.defaults", tmp_path)
    run_benchmark("benchmarks.defaults", tmp_path, "--lr", "0.05", "--grid", "1,10", "--add")
    results = json.loads((tmp_path / "defaults.json").read_text())
    request = TaskRequest(task="t", train={"dataset": "d"})
    defaults = results["service_defaults"]
    assert (defaults["method"], defaults["lambda"], defaults["lr"], defaults["epochs"]) == (
        request.method, request.lambda_, request.lr, request.epochs)
    assert list(results["settings"]) == ["service defaults", "grid [1.0, 10.0], lr 0.05"]
    for entry in results["settings"].values():
        assert set(entry["sequences"]) == set(SEQUENCE_SOURCES)  # every sequence the full run reports
        assert isinstance(entry["both_hold_everywhere"], bool)
        for sequence in entry["sequences"].values():
            assert len(sequence["tasks"]) == 2
            for method in ("finetune", defaults["method"]):
                run = sequence[method]["runs"][0]
                assert len(run["matrix"]) == 2 and 0.0 <= run["forgetting"] <= 1.0
            comparison = sequence["comparison"]
            assert isinstance(comparison["both_hold"], bool) and "mean" in comparison["new_task_points"]
    alternative = results["settings"]["grid [1.0, 10.0], lr 0.05"]
    assert alternative["settings"]["lr"] == 0.05
    if defaults["lambda"] == "auto":
        assert alternative["sequences"]["walkthrough"][defaults["method"]]["runs"][0]["lambdas"][1] in (1.0, 10.0)
    table = (tmp_path / "defaults.md").read_text()
    assert "## Which settings meet both targets on every sequence" in table
    assert "| service defaults |" in table and "| grid [1.0, 10.0], lr 0.05 |" in table
    assert len(results["provenance"]["parts"]) == 1 and results["provenance"]["command"].endswith("--add")


@pytest.mark.timeout(300)
def test_speed_smoke_writes_every_section(tmp_path: Path) -> None:
    """The file broker's service here; Redis's in the test below (one service per test keeps each short)."""
    run_benchmark("benchmarks.speed", tmp_path, "--service", "--brokers", "embedded")
    results = json.loads((tmp_path / "speed.json").read_text())
    assert set(results["importance"]) == {"mlp_64_256_256", "mlp_784_1000_1000", "cnn_1x8x8_16_32"}
    for entry in results["importance"].values():
        assert all(entry[k]["samples_per_s"] > 0 for k in ("per_sample", "batch", "vmap_over_grad", "python_loop"))
    assert all(e["mas_vs_finetune"] > 0 for e in results["training_step"].values())
    assert set(results["service"]) == {"embedded"}
    service = results["service"]["embedded"]
    assert service["predictions"]["one_row"]["p50_ms"] > 0 and service["pickup"]["jobs"] == 2
    assert 0 < service["storage"]["importance_version_bytes"] < service["storage"]["train_version_bytes"]
    table = (tmp_path / "speed.md").read_text()
    assert "Against the targets" in table and "| job pickup, median ms | " in table
    assert "| not measured |" in table  # the Redis column of a run without it


@pytest.mark.timeout(300)
@pytest.mark.skipif(shutil.which("redis-server") is None,
                    reason="redis-server is not on PATH (Debian: apt-get install redis-server)")
def test_speed_service_on_redis_alone() -> None:
    """`--brokers redis` (in process: the CLI and the kernels are the test above's): the predictions are
    taken on the first, here the only, service."""
    from benchmarks.service_speed import measure_service

    service = measure_service("smoke", ("redis",))
    redis = service["results"]["redis"]
    assert set(service["results"]) == {"redis"} and redis["pickup"]["jobs"] == 2
    assert redis["predictions"]["npy_4096"]["rows_per_s"] > 0
    assert "| job pickup, median ms | not measured | " in service["markdown"][0]  # the file broker's column


def test_speed_refuses_an_unknown_broker(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--service", "--brokers", "embedded,rabbit",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "choose one or more of embedded, redis" in done.stderr
    assert not (tmp_path / "speed.json").exists()
