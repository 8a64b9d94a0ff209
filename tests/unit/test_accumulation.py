"""Per-task importance (MAS.md §4): streaming means that do not care how data is split, summed per task (or
blended, the rule measured beside the sum)."""

from __future__ import annotations

import pytest
import torch

from app.mas.accumulation import TaskImportance, blended_importance, total_importance
from app.mas.importance import ImportanceSum, estimate_importance
from tests.unit.conftest import sample_inputs


def test_accumulating_chunks_equals_one_shot_for_any_split(mlp) -> None:
    x = sample_inputs(mlp, 30)
    one_shot = TaskImportance.of(estimate_importance(mlp, "a", x))
    for cuts in ([10, 20], [1, 2, 29], [7]):
        estimate = TaskImportance()
        for lo, hi in zip([0, *cuts], [*cuts, 30], strict=True):
            estimate = estimate.accumulate(estimate_importance(mlp, "a", x[lo:hi]))
        assert estimate.n == 30
        for name, value in one_shot.mean().items():
            torch.testing.assert_close(estimate.mean()[name], value, rtol=1e-5, atol=1e-7)


def test_a_fresh_estimate_ignores_what_came_before(mlp) -> None:
    old, new = sample_inputs(mlp, 8, seed=1), sample_inputs(mlp, 5, seed=2)
    accumulated = TaskImportance.of(estimate_importance(mlp, "a", old)).accumulate(estimate_importance(mlp, "a", new))
    fresh = TaskImportance.of(estimate_importance(mlp, "a", new))
    assert accumulated.n == 13 and fresh.n == 5
    # The mean of the accumulated estimate weighs the 8 old samples and the 5 new ones alike.
    old_sum = estimate_importance(mlp, "a", old).sums
    for name, value in accumulated.mean().items():
        torch.testing.assert_close(value, (old_sum[name] + fresh.sums[name]) / 13)


def test_total_is_the_sum_of_per_task_means_whatever_each_task_size() -> None:
    first = TaskImportance({"w": torch.tensor([4.0, 8.0])}, n=4)  # mean [1, 2]
    second = TaskImportance({"w": torch.tensor([30.0, 0.0]), "head": torch.tensor([3.0])}, n=30)  # mean [1, 0]
    total = total_importance([first, second])
    assert torch.equal(total["w"], torch.tensor([2.0, 2.0])) and torch.equal(total["head"], torch.tensor([0.1]))
    assert first.sums["w"].tolist() == [4.0, 8.0]  # estimates are values: summing leaves them untouched
    assert total_importance([]) == {}


def test_an_estimate_with_tensors_needs_samples() -> None:
    try:
        TaskImportance({"w": torch.ones(2)}, n=0)
    except ValueError:
        return
    raise AssertionError("an estimate with tensors and n = 0 was accepted")


def test_refreshing_one_task_changes_only_its_share_of_the_total() -> None:
    """The defect per-task estimates remove: more samples for task 1 must not dilute task 2's Ω."""
    task1 = TaskImportance({"w": torch.tensor([2.0])}, n=2)
    task2 = TaskImportance({"w": torch.tensor([10.0])}, n=1)
    refreshed1 = task1.accumulate(ImportanceSum({"w": torch.tensor([6.0])}, n=2))  # mean (2 + 6) / 4 = 2
    assert total_importance([refreshed1, task2])["w"].item() == 12.0  # task 2's 10 is intact


def test_the_blend_weighs_task_k_of_n_by_its_closed_form() -> None:
    """Ω ← keep·Ω + (1 − keep)·mean_t from the first task's mean: with n tasks, task k (1-based) weighs
    keep^(n−1) for k = 1 and (1 − keep)·keep^(n−k) after it; a parameter a task lacks counts as zero there."""
    means = [torch.tensor([8.0, 0.0]), torch.tensor([0.0, 4.0]), torch.tensor([2.0, 2.0])]
    estimates = [TaskImportance({"w": 2 * m}, n=2) for m in means]  # sums twice the means, n = 2
    estimates[1] = TaskImportance({"w": 2 * means[1], "head": torch.tensor([6.0])}, n=2)  # head mean 3
    for keep in (0.5, 0.25):
        weights = [keep ** 2, (1 - keep) * keep, 1 - keep]
        expected = sum(w * m for w, m in zip(weights, means, strict=True))
        blended = blended_importance(estimates, keep)
        torch.testing.assert_close(blended["w"], expected)
        torch.testing.assert_close(blended["head"], torch.tensor([3.0 * weights[1]]))
    assert torch.equal(blended_importance(estimates[:1])["w"], means[0])  # one task: its own Ω, whole
    assert blended_importance([]) == {}
    with pytest.raises(ValueError, match="keep"):
        blended_importance(estimates, 1.0)
