"""The importance state of MAS.md §4: a streaming mean that does not care how data is split."""

from __future__ import annotations

import torch

from app.mas.accumulation import ImportanceState
from app.mas.importance import ImportanceSum, estimate_importance
from tests.unit.conftest import sample_inputs


def test_accumulating_chunks_equals_one_shot_for_any_split(mlp) -> None:
    x = sample_inputs(mlp, 30)
    one_shot = ImportanceState.empty().accumulate(estimate_importance(mlp, "a", x))
    for cuts in ([10, 20], [1, 2, 29], [7]):
        state = ImportanceState.empty()
        for lo, hi in zip([0, *cuts], [*cuts, 30], strict=True):
            state = state.accumulate(estimate_importance(mlp, "a", x[lo:hi]))
        assert state.n_open == 30
        for name, value in one_shot.total().items():
            torch.testing.assert_close(state.total()[name], value, rtol=1e-5, atol=1e-7)


def test_replace_discards_the_old_open_estimate(mlp) -> None:
    old, new = sample_inputs(mlp, 8, seed=1), sample_inputs(mlp, 5, seed=2)
    state = ImportanceState.empty().accumulate(estimate_importance(mlp, "a", old))
    replaced = state.replace(estimate_importance(mlp, "a", new))
    fresh = ImportanceState.empty().accumulate(estimate_importance(mlp, "a", new))
    assert replaced.n_open == 5
    assert all(torch.equal(replaced.omega_open[k], fresh.omega_open[k]) for k in fresh.omega_open)


def test_total_is_frozen_plus_open_mean_and_closing_freezes_it() -> None:
    frozen = {"w": torch.tensor([1.0, 2.0])}
    state = ImportanceState.from_tensors(frozen, {}, 0).accumulate(
        ImportanceSum({"w": torch.tensor([4.0, 8.0]), "head": torch.tensor([3.0])}, n=4)
    )
    expected = {"w": torch.tensor([2.0, 4.0]), "head": torch.tensor([0.75])}
    assert all(torch.equal(state.total()[k], v) for k, v in expected.items())
    closed = state.close_task()
    assert closed.n_open == 0 and closed.omega_open == {}
    assert all(torch.equal(closed.omega_frozen[k], v) for k, v in expected.items())
    assert all(torch.equal(closed.total()[k], v) for k, v in expected.items())
    assert frozen["w"].tolist() == [1.0, 2.0]  # states are values: the old one is untouched
