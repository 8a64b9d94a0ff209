"""The drift test (app/mas/drift.py) against slow references: MMD²_u by a double loop over pairs, the
median heuristic by numpy, the permutation p-value by shuffling one permutation at a time; and the
false alarm rate on null data held at the level."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from app.mas import drift


def _slow_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    def k(a: np.ndarray, b: np.ndarray) -> float:
        return math.exp(-float(((a - b) ** 2).sum()) / (2 * sigma**2))

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_the_statistic_and_bandwidth_equal_a_double_loop() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 3)), rng.normal(0.5, 1.0, size=(7, 3))
    pooled = np.concatenate([x, y])
    distances = [np.linalg.norm(pooled[i] - pooled[j]) for i in range(16) for j in range(i + 1, 16)]
    sigma = drift.median_bandwidth(torch.from_numpy(pooled))
    assert sigma == pytest.approx(float(np.median(distances)), rel=1e-9)
    result = drift.mmd_test(torch.from_numpy(x), torch.from_numpy(y), permutations=50)
    assert result.statistic == pytest.approx(_slow_mmd2(x, y, sigma), rel=1e-9, abs=1e-12)
    assert result.bandwidth == pytest.approx(sigma)


def test_the_batched_permutations_equal_one_at_a_time() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 2)), rng.normal(size=(6, 2))
    pooled = torch.from_numpy(np.concatenate([x, y]))
    kernel = drift.gaussian_kernel(pooled, drift.median_bandwidth(pooled))
    splits = torch.zeros(5, 14, dtype=torch.float64)
    for row in range(5):
        splits[row, torch.from_numpy(rng.permutation(14)[:8])] = 1
    batched = drift.mmd2_unbiased(kernel, splits)
    sigma = drift.median_bandwidth(pooled)
    for row in range(5):
        first = pooled[splits[row] == 1].numpy()
        second = pooled[splits[row] == 0].numpy()
        assert float(batched[row]) == pytest.approx(_slow_mmd2(first, second, sigma), rel=1e-9, abs=1e-12)


def test_the_p_value_counts_the_permutations_that_reach_the_observed_statistic() -> None:
    x, y = torch.randn(10, 2, generator=torch.Generator().manual_seed(2)), torch.randn(10, 2) + 3
    result = drift.mmd_test(x, y, permutations=99, seed=3)
    assert result.p_value == pytest.approx(1 / 100)  # no shuffle reaches a split this clean
    same = drift.mmd_test(x, x.clone(), permutations=99, seed=3)
    assert same.p_value > 0.5


def test_the_false_alarm_rate_on_null_batches_is_at_most_the_level() -> None:
    """200 null batches at α = 0.05: alarms are Binomial(200, ≤ 0.05); 20 or more has probability < 0.5 %."""
    generator = torch.Generator().manual_seed(4)
    reference = torch.randn(60, 4, generator=generator)
    alarms = sum(drift.mmd_test(reference, torch.randn(20, 4, generator=generator), permutations=200,
                                seed=trial).p_value <= 0.05 for trial in range(200))
    assert alarms < 20


def test_a_shifted_batch_is_detected_and_tiny_samples_are_refused() -> None:
    generator = torch.Generator().manual_seed(5)
    reference = torch.randn(100, 4, generator=generator)
    shifted = torch.randn(50, 4, generator=generator) * 1.5 + 0.7
    assert drift.mmd_test(reference, shifted, permutations=500).p_value <= 0.01
    with pytest.raises(ValueError, match="at least 2"):
        drift.mmd_test(reference, shifted[:1])


def test_bonferroni_and_the_reservoir() -> None:
    assert drift.corrected_level(0.01, 4) == 0.0025 and drift.corrected_level(0.01, 0) == 0.01
    kept = drift.reservoir_rows(1000, 512, seed=0)
    assert len(kept) == 512 == len(set(kept.tolist())) and kept.tolist() == sorted(kept.tolist())
    assert torch.equal(kept, drift.reservoir_rows(1000, 512, seed=0))
    assert drift.reservoir_rows(10, 512, seed=0).tolist() == list(range(10))
