"""Has deployment data drifted from what a task was trained on? A two-sample test on trunk features (MAS.md §8).

MMD² with a Gaussian kernel between a task's reference features R (a few hundred of its training rows)
and a batch B: the unbiased estimator

    MMD²_u = Σ_{i≠j} k(r_i, r_j) / (m(m−1)) + Σ_{i≠j} k(b_i, b_j) / (n(n−1)) − 2 Σ_{i,j} k(r_i, b_j) / (mn),

with the bandwidth from the median heuristic on the pooled sample (the median pairwise distance), and
its p-value by permutation: the pooled rows are shuffled P times, and p = (1 + #{shuffled ≥ observed}) /
(1 + P), which holds the false alarm rate at the level by construction, at any batch size. The kernel
matrix of the pooled rows is computed once; every permutation is a pair of matrix products with its
membership vectors, so P permutations cost one [P, N] × [N, N] product.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

DEFAULT_PERMUTATIONS = 2000
DEFAULT_ALPHA = 0.01
_PERMUTATION_CHUNK = 256  # permutations per matrix product: bounded memory ([chunk, N] floats)


@dataclass(frozen=True)
class TwoSampleTest:
    statistic: float  # MMD²_u of the observed split
    p_value: float
    bandwidth: float  # σ of the Gaussian kernel exp(−‖x − y‖² / (2σ²))
    permutations: int


def median_bandwidth(pooled: Tensor) -> float:
    """The median heuristic: σ = the median distance between distinct pooled rows (1 where all coincide)."""
    distances = torch.cdist(pooled, pooled)
    upper = distances[torch.triu_indices(len(pooled), len(pooled), offset=1).unbind()]
    median = _median(upper)
    return median if median > 0 else 1.0


def _median(values: Tensor) -> float:
    """The median as statistics defines it (the mean of the middle two of an even count: torch.median
    takes the lower one)."""
    if not values.numel():
        return 0.0
    ordered = values.flatten().sort().values
    middle = len(ordered) // 2
    return float(ordered[middle]) if len(ordered) % 2 else float((ordered[middle - 1] + ordered[middle]) / 2)


def gaussian_kernel(pooled: Tensor, bandwidth: float) -> Tensor:
    squared = torch.cdist(pooled, pooled).square()
    return torch.exp(-squared / (2 * bandwidth**2))


def mmd2_unbiased(kernel: Tensor, in_first: Tensor) -> Tensor:
    """MMD²_u for each membership row of `in_first` ([P, N] of 0/1, the first sample's rows) over the pooled
    kernel matrix [N, N]; returns [P]."""
    a = in_first.to(kernel.dtype)
    b = 1 - a
    m, n = a.sum(1), b.sum(1)
    ka, kb = a @ kernel, b @ kernel
    diagonal = torch.diagonal(kernel)
    within_a = (ka * a).sum(1) - a @ diagonal
    within_b = (kb * b).sum(1) - b @ diagonal
    between = (ka * b).sum(1)
    return within_a / (m * (m - 1)) + within_b / (n * (n - 1)) - 2 * between / (m * n)


def mmd_test(reference: Tensor, batch: Tensor, *, permutations: int = DEFAULT_PERMUTATIONS,
             seed: int = 0) -> TwoSampleTest:
    """The permutation MMD test of `reference` [m, d] against `batch` [n, d] (each at least 2 rows)."""
    if len(reference) < 2 or len(batch) < 2:
        raise ValueError("the MMD test needs at least 2 rows in each sample")
    pooled = torch.cat([reference, batch]).double()
    bandwidth = median_bandwidth(pooled)
    kernel = gaussian_kernel(pooled, bandwidth)
    size, m = len(pooled), len(reference)
    observed_split = torch.zeros(1, size, dtype=torch.float64)
    observed_split[0, :m] = 1
    observed = float(mmd2_unbiased(kernel, observed_split)[0])
    generator = torch.Generator().manual_seed(seed)
    reached, done = 0, 0
    while done < permutations:
        chunk = min(_PERMUTATION_CHUNK, permutations - done)
        order = torch.argsort(torch.rand(chunk, size, generator=generator), dim=1)
        split = (order < m).double()  # a uniformly random choice of which m rows form the first sample
        reached += int((mmd2_unbiased(kernel, split) >= observed - 1e-12).sum())
        done += chunk
    return TwoSampleTest(observed, (1 + reached) / (1 + permutations), bandwidth, permutations)


def corrected_level(alpha: float, tests: int) -> float:
    """Bonferroni: each of `tests` tests at alpha / tests keeps the chance of any false alarm at most alpha."""
    return alpha / max(1, tests)


def reservoir_rows(n: int, keep: int, seed: int) -> Tensor:
    """Which `keep` of `n` rows a task keeps as its reference: a uniform sample without replacement, sorted."""
    if n <= keep:
        return torch.arange(n)
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator)[:keep].sort().values
