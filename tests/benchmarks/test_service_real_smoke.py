"""benchmarks.service_real at its smoke profile (a tiny random BERT in MiniLM's place, with its tokenizer and
sentence-transformers pipeline; EfficientNet-Lite0 at 64 px): every section runs and writes sane figures (not the
targets)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _smoke(out: Path, sections: str) -> dict:
    subprocess.run([sys.executable, "-m", "benchmarks.service_real", "--profile", "smoke", "--sections", sections,
                    "--out", str(out)], check=True, timeout=280, cwd=Path(__file__).resolve().parents[2])
    results = json.loads((out / "service_real.json").read_text())
    assert results["profile"] == "smoke" and results["provenance"]["command"].endswith(f"--out {out}")
    assert {"torch", "cpu", "torch_threads", "date"} <= results["environment"].keys()
    assert {v["figure"] for v in results["verdicts"]} and all(isinstance(v["met"], bool) for v in results["verdicts"])
    assert "Against the targets" in (out / "service_real.md").read_text()
    return results


@pytest.mark.timeout(300)
def test_storage_section(tmp_path: Path) -> None:
    """Each section a run of its own (`--sections`), so that no one test starts every process of the benchmark."""
    results = _smoke(tmp_path, "storage")
    assert {"predictions", "memory"}.isdisjoint(results) and len(results["verdicts"]) == 3

    storage = results["storage"]
    assert storage["version0_bytes"] > 1_000_000  # the stand-in's weights, 4 MB (MiniLM's: 90 MB)
    assert storage["second_model_version0_bytes"] == 0
    last_2, none = storage["last_2"], storage["none"]
    assert last_2["trained_groups"] == ["block.1", "block.2"] and none["trained_groups"] == []
    assert 0 < last_2["trained_blocks_bytes"] < last_2["whole_theta_file_bytes"]
    assert last_2["written"]["other"] == 0 and none["written"]["other"] == 0
    assert last_2["written"]["total"] >= last_2["trained_blocks_bytes"]
    assert 0 < none["written"]["total"] < last_2["written"]["total"]


@pytest.mark.timeout(300)
def test_memory_section(tmp_path: Path) -> None:
    results = _smoke(tmp_path, "memory")
    assert {"predictions", "storage"}.isdisjoint(results) and len(results["verdicts"]) == 1
    memory = results["memory"]
    assert memory["runs_at_once"]  # the smoke profile's three processes share the cores; the full profile's do not
    assert "(the three started at once" in (tmp_path / "service_real.md").read_text()
    for run in (memory["small"], memory["large"], memory["larger"]):
        assert 0 < run["rss_before_job"] <= run["peak"] and run["job_seconds"] > 0
    assert memory["large"]["images"] == memory["factor"] * memory["small"]["images"]
    assert memory["larger"]["images"] == 2 * memory["large"]["images"]
    assert memory["peak_difference_doubled"] == memory["larger"]["peak"] - memory["large"]["peak"]


@pytest.mark.timeout(300)
def test_predictions_section(tmp_path: Path) -> None:
    results = _smoke(tmp_path, "predictions")
    assert {"storage", "memory"}.isdisjoint(results) and len(results["verdicts"]) == 2
    predictions = results["predictions"]
    assert all(rate > 0 for rate in predictions["texts_per_s"].values())
    assert predictions["service_vs_sentence_transformers"] > 0
    assert predictions["max_probability_difference"] <= 1e-5  # the same network: only float rounding differs


def test_an_unknown_section_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.service_real", "--sections", "storage,speed",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 2 and "--sections: choose from storage, memory, predictions" in done.stderr
    assert not (tmp_path / "service_real.json").exists()
