"""The task-free answer's math (MAS.md §7) against independent computations: class statistics against a slow
per-row loop over a numpy forward pass, the ridge head against direct numpy solves over the whole grid, the
shrunk precision against centred outer products, the routing and the nearest class mean by hand, the ECE by
a per-row binning, the temperature by a fine brute-force search, the unknown threshold by counting."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from app.mas import passes
from app.mas.class_statistics import ClassStatistics, Projection, features, head_logits, measure
from app.mas.networks import MultiHeadNet, build_network
from app.mas.task_free import (
    PREDICTORS,
    RIDGE_GRID,
    ROUTED,
    SHRINKAGE,
    Catalog,
    HeldBack,
    TaskFreeHead,
    answer,
    choose_ridge,
    expected_calibration_error,
    fit,
    fit_temperature,
    mahalanobis_scores,
    raw_answer,
    ridge_solve,
    shrunk_precision,
    unknown_threshold,
)
from tests.unit.conftest import with_heads

TASKS = {"a": 2, "b": 3, "c": 4}


def small_net(d: int = 6, hidden: tuple[int, ...] = (10, 8), heads: dict[str, int] | None = None) -> MultiHeadNet:
    net = build_network({"kind": "mlp", "input_shape": [d], "hidden": list(hidden)}, seed=3)
    return with_heads(net, heads if heads is not None else TASKS)


def numpy_features(net: MultiHeadNet, x: np.ndarray) -> np.ndarray:
    """The MLP trunk by hand in float64: each Linear then ReLU, from the module's weights."""
    f = x.astype(np.float64)
    for layer in net.trunk:
        if isinstance(layer, nn.Linear):
            f = f @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy()
        else:
            assert isinstance(layer, nn.ReLU)
            f = np.maximum(f, 0.0)
    return f


def slow_statistics(f: np.ndarray, labels: np.ndarray, num_classes: int, r: np.ndarray | None) -> dict:
    """Counts, per-class sums and Grams of f and of h = ReLU(R f), one row at a time."""
    d = f.shape[1]
    out = {"counts": np.zeros(num_classes), "sums": np.zeros((num_classes, d)), "gram": np.zeros((d, d))}
    if r is not None:
        out |= {"projected_sums": np.zeros((num_classes, r.shape[0])), "projected_gram": np.zeros((r.shape[0],) * 2)}
    for row, c in zip(f, labels, strict=True):
        out["counts"][c] += 1
        out["sums"][c] += row
        out["gram"] += np.outer(row, row)
        if r is not None:
            h = np.maximum(r @ row, 0.0)
            out["projected_sums"][c] += h
            out["projected_gram"] += np.outer(h, h)
    return out


def assert_statistics_close(stats: ClassStatistics, expected: dict, rtol: float = 1e-5) -> None:
    for name, value in expected.items():
        got = getattr(stats, name)
        assert got is not None and got.dtype == torch.float64, name
        scale = max(1.0, float(np.abs(value).max()))
        np.testing.assert_allclose(got.numpy(), value, rtol=rtol, atol=rtol * scale, err_msg=name)


# 1. measure --------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [4096, 7])
def test_measure_equals_a_slow_loop_over_rows(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(passes, "MAX_ROWS", chunk)
    net = small_net()
    assert passes.rows_per_pass(net, torch.zeros(5, 6)) == chunk
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(53, 6)).astype(np.float32), rng.integers(0, 4, 53)  # 53 = 7·7 + 4: a ragged last chunk
    projection = Projection.draw(net.feature_dim, 12, seed=5)
    stats = measure(net, torch.from_numpy(x), torch.from_numpy(y), 4, projection)
    f = numpy_features(net, x)
    assert_statistics_close(stats, slow_statistics(f, y, 4, projection.weight.double().numpy()))
    assert stats.n == 53 and stats.num_classes == 4
    plain = measure(net, torch.from_numpy(x), torch.from_numpy(y), 4)
    assert plain.projected_sums is None and plain.projected_gram is None
    assert_statistics_close(plain, slow_statistics(f, y, 4, None))


def test_projection_is_relu_of_a_seeded_gaussian_matrix() -> None:
    projection = Projection.draw(5, 9, seed=11)
    again = Projection.draw(5, 9, seed=11)
    assert projection.width == 9 and torch.equal(projection.weight, again.weight)
    f = torch.randn(4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = np.maximum(f.numpy() @ projection.weight.double().numpy().T, 0.0)
    np.testing.assert_allclose(projection(f).numpy(), expected, rtol=1e-12)


def test_statistics_of_two_label_subsets_add_up_to_the_union() -> None:
    net = small_net()
    rng = np.random.default_rng(2)
    x, y = torch.from_numpy(rng.normal(size=(40, 6)).astype(np.float32)), torch.from_numpy(rng.integers(0, 3, 40))
    projection = Projection.draw(net.feature_dim, 7, seed=1)
    first = y < 2  # classes 0 and 1 against class 2: disjoint label sets, like two tasks' rows
    union = measure(net, x, y, 3, projection)
    part_a = measure(net, x[first], y[first], 3, projection)
    part_b = measure(net, x[~first], y[~first], 3, projection)
    for name, value in union.as_tensors().items():
        torch.testing.assert_close(part_a.as_tensors()[name] + part_b.as_tensors()[name], value, rtol=1e-6, atol=1e-6)
    # an arbitrary split of the rows adds up as well (sums commute)
    odd = torch.arange(40) % 2 == 1
    halves = [measure(net, x[m], y[m], 3, projection).as_tensors() for m in (odd, ~odd)]
    for name, value in union.as_tensors().items():
        torch.testing.assert_close(halves[0][name] + halves[1][name], value, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("with_projection", [True, False])
def test_class_statistics_round_trip_through_safetensors_bytes(with_projection: bool) -> None:
    net = small_net()
    x = torch.randn(20, 6, generator=torch.Generator().manual_seed(4))
    y = torch.arange(20) % 3
    projection = Projection.draw(net.feature_dim, 6, seed=2) if with_projection else None
    stats = measure(net, x, y, 3, projection)
    back = ClassStatistics.from_tensors(load_safetensors(save_safetensors(stats.as_tensors())))
    names = ["counts", "sums", "gram"] + (["projected_sums", "projected_gram"] if with_projection else [])
    assert sorted(stats.as_tensors()) == sorted(names)
    for name in names:
        assert torch.equal(getattr(back, name), getattr(stats, name)) and getattr(back, name).dtype == torch.float64
    if not with_projection:
        assert back.projected_sums is None and back.projected_gram is None


# 2. the ridge head ---------------------------------------------------------------------------------


def ridge_problem(seed: int, d: int = 12, classes: int = 5, train: int = 30, held: int = 200):
    """Noisy linear classes: few training rows against d, so the held-back accuracy depends on ρ."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d))
    def rows(n: int):
        y = rng.integers(0, classes, n)
        return centres[y] + 1.5 * rng.normal(size=(n, d)), y
    h_train, y_train = rows(train)
    h_held, y_held = rows(held)
    onehot = np.eye(classes)[y_train]
    return h_train.T @ h_train, h_train.T @ onehot, h_held, y_held


@pytest.mark.parametrize("seed", range(6))
def test_choose_ridge_picks_the_best_held_back_rho_and_solves_exactly(seed: int) -> None:
    gram, targets, h_held, y_held = ridge_problem(seed)
    rho, w = choose_ridge(torch.from_numpy(gram), torch.from_numpy(targets), torch.from_numpy(h_held),
                          torch.from_numpy(y_held))
    scale = np.linalg.eigvalsh(gram).clip(min=0).mean()
    grid = [m * scale for m in RIDGE_GRID]
    accuracies = []
    for candidate in grid:
        w_candidate = np.linalg.solve(gram + candidate * np.eye(gram.shape[0]), targets)
        accuracies.append(float(((h_held @ w_candidate).argmax(1) == y_held).mean()))
    best = max(accuracies)
    # ties go to the larger ρ (the last in the ascending grid)
    expected = max(i for i, a in enumerate(accuracies) if a == best)
    assert rho == pytest.approx(grid[expected], rel=1e-9)
    direct = np.linalg.solve(gram + rho * np.eye(gram.shape[0]), targets)
    np.testing.assert_allclose(w.numpy(), direct, rtol=1e-7, atol=1e-9 * np.abs(direct).max())
    reference = ridge_solve(torch.from_numpy(gram), torch.from_numpy(targets), rho)
    np.testing.assert_allclose(w.numpy(), reference.numpy(), rtol=1e-7, atol=1e-9 * np.abs(direct).max())


def test_choose_ridge_grid_is_not_degenerate_on_the_test_problems() -> None:
    """The brute-force check above means something only if ρ changes the held-back accuracy."""
    gram, targets, h_held, y_held = ridge_problem(0)
    scale = np.linalg.eigvalsh(gram).mean()
    accuracies = {float(((h_held @ np.linalg.solve(gram + m * scale * np.eye(12), targets)).argmax(1) == y_held).mean())
                  for m in RIDGE_GRID}
    assert len(accuracies) > 1


def test_ridge_solve_is_the_normal_equations() -> None:
    rng = np.random.default_rng(8)
    h, y = rng.normal(size=(25, 6)), rng.normal(size=(25, 3))
    w = ridge_solve(torch.from_numpy(h.T @ h), torch.from_numpy(h.T @ y), 0.7).numpy()
    # the gradient of ‖hW − y‖² + ρ‖W‖² vanishes there
    np.testing.assert_allclose(h.T @ (h @ w - y) + 0.7 * w, 0.0, atol=1e-10)


# 3. the unknown detector's precision and scores ----------------------------------------------------


def blob_features(seed: int, classes: int = 4, d: int = 5, per_class: int = 30, spread: float = 1.0):
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.normal(size=(classes, d))
    y = np.repeat(np.arange(classes), per_class)
    mixing = rng.normal(size=(d, d)) / math.sqrt(d)  # correlated noise, so the covariance is not diagonal
    f = centres[y] + spread * rng.normal(size=(len(y), d)) @ mixing
    return f, y


def numpy_shrunk_precision(f: np.ndarray, y: np.ndarray, classes: int) -> np.ndarray:
    n, d = f.shape
    within = np.zeros((d, d))
    for c in range(classes):
        centred = f[y == c] - f[y == c].mean(0)
        within += centred.T @ centred
    covariance = within / n
    shrunk = (1 - SHRINKAGE) * covariance + SHRINKAGE * np.trace(covariance) / d * np.eye(d)
    return np.linalg.inv(shrunk)


def sums_of(f: np.ndarray, y: np.ndarray, classes: int):
    onehot = np.eye(classes)[y]
    return (torch.from_numpy(f.T @ f), torch.from_numpy(onehot.T @ f), torch.from_numpy(onehot.sum(0)))


@pytest.mark.parametrize("seed", range(3))
def test_shrunk_precision_is_the_inverse_of_the_shrunk_pooled_within_class_covariance(seed: int) -> None:
    f, y = blob_features(seed)
    gram, sums, counts = sums_of(f, y, 4)
    np.testing.assert_allclose(shrunk_precision(gram, sums, counts).numpy(), numpy_shrunk_precision(f, y, 4),
                               rtol=1e-8, atol=1e-10)


def test_shrunk_precision_is_finite_with_fewer_rows_than_features() -> None:
    f, y = blob_features(0, classes=2, d=10, per_class=3)
    gram, sums, counts = sums_of(f, y, 2)
    precision = shrunk_precision(gram, sums, counts).numpy()
    np.testing.assert_allclose(precision, numpy_shrunk_precision(f, y, 2), rtol=1e-7, atol=1e-9)
    assert np.isfinite(precision).all()


def head_from_blobs(f: np.ndarray, y: np.ndarray, classes: int, sizes: tuple[int, ...] | None = None) -> TaskFreeHead:
    gram, sums, counts = sums_of(f, y, classes)
    sizes = sizes or (classes,)
    catalog = Catalog(tuple("abcdefgh"[: len(sizes)]), sizes)
    means = (sums / counts[:, None]).float()
    ridge = ridge_solve(gram, sums.T, 1.0).float()
    return TaskFreeHead(catalog, means, shrunk_precision(gram, sums, counts).float(), ridge, None, {}, 0.0, 1.0)


def test_mahalanobis_scores_equal_a_loop_over_rows_and_classes() -> None:
    f, y = blob_features(3)
    head = head_from_blobs(f, y, 4)
    fresh = blob_features(4)[0][:50]
    precision, means = head.precision.double().numpy(), head.means.double().numpy()
    expected = []
    for row in fresh.astype(np.float32).astype(np.float64):
        expected.append(-min(float((row - mu) @ precision @ (row - mu)) for mu in means))
    got = mahalanobis_scores(head, torch.from_numpy(fresh))
    assert got.shape == (50,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-3)


# 4. the unknown threshold ------------------------------------------------------------------------


def test_unknown_threshold_calls_at_most_the_rate_unknown_on_the_rows_it_was_set_on() -> None:
    rng = np.random.default_rng(12)
    for _ in range(300):
        n = int(rng.integers(1, 400))
        rate = float(rng.choice([rng.uniform(0, 1), 0.05, 0.01, 0.1, 0.5, 0.0]))
        distinct = bool(rng.integers(0, 2))
        values = rng.normal(size=n) if distinct else rng.integers(0, 5, n).astype(np.float64)  # ties on half the draws
        scores = torch.from_numpy(values).float()
        threshold = unknown_threshold(scores, rate)
        below = int((scores.double() < threshold).sum())
        assert below <= rate * n + 1e-9, (n, rate, threshold)
        if distinct and len(set(scores.tolist())) == n:
            assert below == math.floor(rate * n), (n, rate)
    assert unknown_threshold(torch.zeros(0), 0.05) == -math.inf
    assert unknown_threshold(torch.tensor([1.0, 2.0]), 1.0) == math.inf  # every row unknown is allowed at rate 1


def test_unknown_threshold_gives_about_the_rate_on_fresh_rows() -> None:
    rng = np.random.default_rng(13)
    for rate in (0.05, 0.2):
        threshold = unknown_threshold(torch.from_numpy(rng.gumbel(size=5000)), rate)
        fresh = rng.gumbel(size=20000)
        # the coverage of an order statistic has sd √(rate(1−rate)/n) ≤ 0.006 here: 0.03 is about 5 sd
        assert abs(float((fresh < threshold).mean()) - rate) < 0.03, rate


def test_unknown_rate_on_fresh_rows_through_the_mahalanobis_detector() -> None:
    f, y = blob_features(5, per_class=200)
    head = head_from_blobs(f, y, 4)
    held_rows = draw_like_blobs(5, per_class=250, noise_seed=8)
    fresh_rows = draw_like_blobs(5, per_class=1000, noise_seed=7)
    head.threshold = unknown_threshold(mahalanobis_scores(head, torch.from_numpy(held_rows)), 0.05)
    called = answer(head, "ncm", torch.from_numpy(fresh_rows)).unknown.double().mean()
    assert abs(float(called) - 0.05) < 0.025


def draw_like_blobs(seed: int, per_class: int, noise_seed: int, classes: int = 4, d: int = 5) -> np.ndarray:
    """Rows of `blob_features(seed)`'s distribution (its centres and mixing), with noise of their own."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.normal(size=(classes, d))
    mixing = rng.normal(size=(d, d)) / math.sqrt(d)
    y = np.repeat(np.arange(classes), per_class)
    return centres[y] + np.random.default_rng(noise_seed).normal(size=(len(y), d)) @ mixing


# 5. calibration -----------------------------------------------------------------------------------


def hand_ece(confidence: list[float], correct: list[bool], bins: int = 15) -> float:
    """Guo et al.'s ECE by a loop over rows: bin b holds b/15 ≤ confidence < (b+1)/15 (and 1 in the last)."""
    members: list[list[int]] = [[] for _ in range(bins)]
    for i, c in enumerate(confidence):
        b = next(b for b in range(bins) if b / bins <= c < (b + 1) / bins) if c < 1 else bins - 1
        members[b].append(i)
    total = 0.0
    for rows in members:
        if rows:
            accuracy = sum(correct[i] for i in rows) / len(rows)
            mean_confidence = sum(confidence[i] for i in rows) / len(rows)
            total += len(rows) / len(confidence) * abs(accuracy - mean_confidence)
    return total


@pytest.mark.parametrize("seed", range(4))
def test_expected_calibration_error_equals_a_fifteen_bin_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    confidence = rng.uniform(0, 1, n) ** rng.uniform(0.2, 3)
    confidence[:2] = [1.0, 0.0]
    correct = rng.uniform(size=n) < np.clip(confidence + rng.normal(0, 0.2), 0, 1)
    got = expected_calibration_error(torch.from_numpy(confidence), torch.from_numpy(correct))
    assert got == pytest.approx(hand_ece(confidence.tolist(), correct.tolist()), abs=1e-12)
    assert math.isnan(expected_calibration_error(torch.zeros(0), torch.zeros(0, dtype=torch.bool)))


def test_a_perfectly_calibrated_bin_has_no_error() -> None:
    confidence = torch.full((10,), 0.7)
    correct = torch.tensor([True] * 7 + [False] * 3)
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0, abs=1e-7)
    assert expected_calibration_error(confidence, torch.ones(10, dtype=torch.bool)) == pytest.approx(0.3, abs=1e-7)


def numpy_nll(log_probs: np.ndarray, labels: np.ndarray, temperatures: np.ndarray) -> np.ndarray:
    z = log_probs[None] / temperatures[:, None, None]
    top = z.max(2, keepdims=True)
    log_normaliser = np.log(np.exp(z - top).sum(2)) + top[..., 0]
    return (log_normaliser - z[:, np.arange(len(labels)), labels]).mean(1)


@pytest.mark.parametrize(("seed", "sharpness"), [(0, 4.0), (1, 0.3), (2, 1.0), (3, 10.0)])
def test_fit_temperature_lowers_the_nll_and_is_near_a_fine_brute_force_minimiser(seed: int, sharpness: float) -> None:
    rng = np.random.default_rng(seed)
    n, k = 400, 6
    true_logits = rng.normal(size=(n, k)) * 2
    probs = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(k, p=p) for p in probs])
    shown = true_logits * sharpness  # over- (sharpness > 1) or under-confident (< 1) log-probabilities
    log_probs = shown - np.log(np.exp(shown).sum(1, keepdims=True))
    t = fit_temperature(torch.from_numpy(log_probs), torch.from_numpy(labels))
    # the NLL is convex in 1/T, so unimodal in log T: a ternary search finds its minimiser to ~1e-9 decades
    low, high = -4.0, 3.0
    while high - low > 1e-9:
        a, b = low + (high - low) / 3, high - (high - low) / 3
        nll_a, nll_b = numpy_nll(log_probs, labels, np.array([10.0**a, 10.0**b]))
        low, high = (low, b) if nll_a < nll_b else (a, high)
    t_best = 10.0**low
    nll_best = float(numpy_nll(log_probs, labels, np.array([t_best]))[0])
    coarse = numpy_nll(log_probs, labels, 10.0 ** np.linspace(-4, 3, 701))
    assert nll_best <= coarse.min() + 1e-12  # and no grid point beats it
    nll_t, nll_one = numpy_nll(log_probs, labels, np.array([t, 1.0]))
    assert nll_t <= nll_one + 1e-12
    assert nll_t - nll_best <= 2e-3 * nll_best
    assert abs(math.log10(t) - math.log10(t_best)) <= 0.05  # the fitted grid's step
    assert t == pytest.approx(sharpness, rel=0.35)  # undoing the sharpening recovers the true probabilities
    assert fit_temperature(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)) == 1.0


# 6. answers --------------------------------------------------------------------------------------


def test_catalog_numbers_classes_in_the_order_learned() -> None:
    catalog = Catalog(("a", "b", "c"), (2, 3, 4))
    assert catalog.num_classes == 9 and catalog.offsets == [0, 2, 5]
    assert catalog.class_task.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert catalog.global_labels("a", torch.tensor([1, 0])).tolist() == [1, 0]
    assert catalog.global_labels("b", torch.tensor([0, 2])).tolist() == [2, 4]
    assert catalog.global_labels("c", torch.tensor([3, 1], dtype=torch.int32)).tolist() == [8, 6]


def answer_setup(seed: int = 0, with_projection: bool = True):
    rng = np.random.default_rng(seed)
    sizes, d, n = (2, 3, 4), 5, 60
    f, y = blob_features(seed, classes=9, d=d, per_class=10)
    head = head_from_blobs(f, y, 9, sizes)
    projection = Projection.draw(d, 16, seed=seed) if with_projection else None
    width = projection.width if projection is not None else d
    head.projection = projection
    head.ridge = torch.from_numpy(rng.normal(size=(width, 9))).float()
    head.temperatures = {p: float(rng.uniform(0.5, 2.0)) for p in PREDICTORS}
    head.threshold = -5.0
    rows = torch.from_numpy(rng.normal(size=(n, d)) * 3).float()
    logits = [torch.from_numpy(rng.normal(size=(n, c)) * rng.uniform(0.5, 3)).float() for c in sizes]
    return head, rows, logits


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def log_softmax(z: np.ndarray) -> np.ndarray:
    return np.log(softmax(z))


def hand_ridge_logits(head: TaskFreeHead, row: np.ndarray) -> np.ndarray:
    h = row if head.projection is None else np.maximum(head.projection.weight.double().numpy() @ row, 0)
    return h @ head.ridge.double().numpy()


@pytest.mark.parametrize("with_projection", [True, False])
def test_ncm_and_ridge_answers_equal_argmaxes_computed_by_hand(with_projection: bool) -> None:
    head, rows, _ = answer_setup(1, with_projection)
    means = head.means.double().numpy()
    for predictor in ("ncm", "ridge"):
        got = answer(head, predictor, rows)
        temperature = head.temperatures[predictor]
        for i, row in enumerate(rows.double().numpy()):
            if predictor == "ncm":
                raw = np.array([row @ mu / (np.linalg.norm(row) * np.linalg.norm(mu)) for mu in means])
            else:
                raw = hand_ridge_logits(head, row)
            assert int(got.classes[i]) == int(raw.argmax()), (predictor, i)
            probs = softmax(raw / temperature)
            np.testing.assert_allclose(got.probabilities[i].numpy(), probs, rtol=1e-4, atol=1e-6)
            assert float(got.confidence[i]) == pytest.approx(probs[raw.argmax()], rel=1e-4, abs=1e-6)
        assert got.tasks.tolist() == head.catalog.class_task[got.classes].tolist()
        torch.testing.assert_close(got.probabilities.sum(1), torch.ones(len(rows)), rtol=0, atol=1e-5)
        assert torch.equal(got.unknown, got.score < head.threshold)


@pytest.mark.parametrize("predictor", ["max_softmax", "energy", "ridge_routed"])
def test_routed_answers_take_the_routed_task_heads_argmax(predictor: str) -> None:
    head, rows, logits = answer_setup(2)
    sizes, offsets = head.catalog.sizes, head.catalog.offsets
    got = answer(head, predictor, rows, logits)
    choice, _ = raw_answer(head, predictor, rows, logits)
    assert torch.equal(choice, got.classes)
    temperature = head.temperatures[predictor]
    for i, row in enumerate(rows.double().numpy()):
        per_task = [lg[i].double().numpy() for lg in logits]
        if predictor == "max_softmax":
            task_score = np.array([softmax(z).max() for z in per_task])
            task_log_probs = log_softmax(np.log(task_score))
        elif predictor == "energy":
            task_score = np.array([np.log(np.exp(z).sum()) for z in per_task])
            task_log_probs = log_softmax(task_score)
        else:
            p = softmax(hand_ridge_logits(head, row) / head.temperatures["ridge"])  # at the ridge's temperature
            task_score = np.array([p[o : o + s].sum() for o, s in zip(offsets, sizes, strict=True)])
            task_log_probs = np.log(task_score)  # already a distribution over tasks
        routed = int(task_score.argmax())
        assert int(got.tasks[i]) == routed, i
        assert int(got.classes[i]) == offsets[routed] + int(per_task[routed].argmax()), i
        assert offsets[routed] <= int(got.classes[i]) < offsets[routed] + sizes[routed]
        log_probs = np.concatenate([task_log_probs[t] + log_softmax(z) for t, z in enumerate(per_task)])
        np.testing.assert_allclose(got.probabilities[i].numpy(), softmax(log_probs / temperature), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got.probabilities.sum(1), torch.ones(len(rows)), rtol=0, atol=1e-5)


def test_routed_predictors_need_every_head_and_unknown_predictors_are_refused() -> None:
    head, rows, logits = answer_setup(3)
    with pytest.raises(ValueError, match="head's logits"):
        raw_answer(head, "energy", rows, None)
    with pytest.raises(ValueError, match="head's logits"):
        raw_answer(head, "max_softmax", rows, logits[:2])
    with pytest.raises(ValueError, match="unknown predictor"):
        raw_answer(head, "lda", rows, logits)


def test_task_free_head_round_trips_through_safetensors_and_json() -> None:
    head, rows, logits = answer_setup(4)
    back = TaskFreeHead.restore(load_safetensors(save_safetensors(head.as_tensors())),
                                json.loads(json.dumps(head.as_meta())), head.projection)
    for predictor in PREDICTORS:
        a, b = answer(head, predictor, rows, logits), answer(back, predictor, rows, logits)
        assert torch.equal(a.classes, b.classes) and torch.equal(a.probabilities, b.probabilities)
        assert torch.equal(a.unknown, b.unknown)


# 7. fit end to end --------------------------------------------------------------------------------


def three_task_blobs(seed: int, per_class: int):
    """Three tasks of separable Gaussian blobs in input space (d = 6): (task, x, local labels) for each."""
    rng = np.random.default_rng(seed)
    centres = 4.0 * rng.normal(size=(sum(TASKS.values()), 6))
    out, offset = [], 0
    noise = np.random.default_rng(seed + 1000 * per_class)
    for task, size in TASKS.items():
        y = np.repeat(np.arange(size), per_class)
        x = centres[offset + y] + 0.4 * noise.normal(size=(len(y), 6))
        out.append((task, torch.from_numpy(x).float(), torch.from_numpy(y)))
        offset += size
    return out


def held_back_rows(net: MultiHeadNet, catalog: Catalog, rows, with_logits: bool) -> HeldBack:
    x = torch.cat([x for _, x, _ in rows])
    labels = torch.cat([catalog.global_labels(task, y) for task, _, y in rows])
    f = features(net, x)
    return HeldBack(f, labels, head_logits(net, list(TASKS), x, f) if with_logits else None)


@pytest.mark.parametrize("width", [64, 0])
def test_fit_on_three_tasks_of_blobs(width: int) -> None:
    net = small_net(hidden=(32,))
    projection = Projection.draw(net.feature_dim, width, seed=9) if width else None
    train, held = three_task_blobs(0, per_class=40), three_task_blobs(0, per_class=25)
    statistics = [(task, measure(net, x, y, TASKS[task], projection)) for task, x, y in train]
    catalog = Catalog(tuple(TASKS), tuple(TASKS.values()))
    fitted = fit(statistics, held_back_rows(net, catalog, held, with_logits=True), projection=projection)
    head = fitted.head
    assert head.catalog == catalog
    assert set(fitted.held_back) == set(PREDICTORS) == set(head.temperatures)
    for predictor, scores in fitted.held_back.items():
        assert set(scores.as_dict()) == {"accuracy", "task_accuracy", "ece"}
        assert 0 <= scores.accuracy <= scores.task_accuracy <= 1 and 0 <= scores.ece <= 1, predictor
        assert head.temperatures[predictor] > 0
    assert fitted.held_back["ridge"].accuracy > 0.9
    assert fitted.held_back["ncm"].accuracy > 0.9

    # the head's parts, recomputed from the training rows by numpy
    f_train = np.concatenate([numpy_features(net, x.numpy()) for _, x, _ in train])
    y_train = np.concatenate([catalog.global_labels(t, y).numpy() for t, _, y in train])
    means = np.stack([f_train[y_train == c].mean(0) for c in range(catalog.num_classes)])
    np.testing.assert_allclose(head.means.numpy(), means, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(head.precision.numpy(), numpy_shrunk_precision(f_train, y_train, catalog.num_classes),
                               rtol=1e-3, atol=1e-4 * float(np.abs(head.precision.numpy()).max()))
    h_train = np.maximum(f_train @ projection.weight.double().numpy().T, 0) if projection is not None else f_train
    ridge = np.linalg.solve(h_train.T @ h_train + head.rho * np.eye(h_train.shape[1]),
                            h_train.T @ np.eye(catalog.num_classes)[y_train])
    np.testing.assert_allclose(head.ridge.numpy(), ridge, rtol=1e-3, atol=1e-4 * np.abs(ridge).max())

    # the held-back accuracy the fit reports is the ridge head's, by hand
    held_back = held_back_rows(net, catalog, held, with_logits=False)
    f_held = held_back.features.double().numpy()
    h_held = np.maximum(f_held @ projection.weight.double().numpy().T, 0) if projection is not None else f_held
    hand_accuracy = float(((h_held @ head.ridge.double().numpy()).argmax(1) == held_back.labels.numpy()).mean())
    assert fitted.held_back["ridge"].accuracy == pytest.approx(hand_accuracy, abs=1.5 / len(f_held))
    # at most 5 % of the held-back rows are called unknown by the threshold set on them
    unknown = answer(head, "ridge", held_back.features).unknown
    assert 0 < float(unknown.double().mean()) <= 0.05

    without = fit(statistics, held_back, projection=projection)
    assert set(without.held_back) == set(PREDICTORS) - set(ROUTED) == set(without.head.temperatures)
    assert without.head.rho == head.rho and torch.equal(without.head.ridge, head.ridge)


# 8. head logits ------------------------------------------------------------------------------------


def test_head_logits_equal_each_task_forward() -> None:
    net = small_net()
    x = torch.randn(23, 6, generator=torch.Generator().manual_seed(6))
    f = features(net, x)
    np.testing.assert_allclose(f.numpy(), numpy_features(net, x.numpy()), rtol=1e-5, atol=1e-6)
    logits = head_logits(net, list(TASKS), x, f)
    net.eval()
    with torch.no_grad():
        for task, got in zip(TASKS, logits, strict=True):
            assert got.shape == (23, TASKS[task]) and got.dtype == torch.float32
            torch.testing.assert_close(got, net(x, task), rtol=1e-6, atol=1e-6)
            head = net.heads[task]
            by_hand = numpy_features(net, x.numpy()) @ head.weight.double().numpy().T + head.bias.double().numpy()
            np.testing.assert_allclose(got.numpy(), by_hand, rtol=1e-5, atol=1e-5)
    assert features(net, torch.zeros(0, 6)).shape == (0, net.feature_dim)
