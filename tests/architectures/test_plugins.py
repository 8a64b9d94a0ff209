"""A plugin installed like any package (pip, into its own --target directory) adds its kind to the registry
through the `lifelong.architectures` entry point group, in a fresh process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "lifelong-plugin-example"
ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, torch
from app.architectures import build_network, get_architecture, installed_architectures, load_network
from app.mas.networks import network_state
spec = {"kind": "tiny-tabular", "features": 3, "trainable": "none"}
net = build_network(spec, seed=0)
net.add_head("t", 2, seed=0)
x = get_architecture("tiny-tabular").preprocess(net.architecture, [[1, 2, 3], [4, 5, 6]])
again = load_network(net.architecture, network_state(net))
print(json.dumps({"kinds": list(installed_architectures()), "spec": net.architecture, "frozen": sorted(net.frozen),
                  "shape": list(net(x, "t").shape), "same": torch.equal(again(x, "t"), net(x, "t"))}))
"""


def test_an_installed_plugin_adds_its_kind(tmp_path: Path):
    source, target = tmp_path / "source", tmp_path / "site"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(source)],
        check=True, capture_output=True, timeout=120,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)])}
    probe = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert {"tiny-tabular", "mlp", "cnn", "text-encoder", "image-backbone"} <= set(result["kinds"])
    assert result["spec"] == {"kind": "tiny-tabular", "features": 3, "width": 8, "trainable": "none"}
    assert result["frozen"] == ["trunk.0.bias", "trunk.0.weight"]
    assert result["shape"] == [2, 2] and result["same"]


def test_the_plugin_is_absent_without_its_package():
    probe = subprocess.run(
        [sys.executable, "-c", "from app.architectures import installed_architectures as i; print(list(i()))"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    assert "tiny-tabular" not in probe.stdout and "text-encoder" in probe.stdout
