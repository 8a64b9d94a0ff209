"""Negative and positive flips (app/mas/evaluation.py) on hand-made predictions, and the promotion rule
`max_negative_flip_rate` (app/aliases/promotion.py) on tables of flip rates."""

from __future__ import annotations

import pytest
import torch

from app.aliases.promotion import PromotionPolicy, decide
from app.mas.evaluation import flip_rates, fraction_correct


def test_flips_count_the_churn_that_accuracy_hides() -> None:
    labels = torch.tensor([0, 1, 1, 0, 2, 2, 1, 0])
    before = torch.tensor([0, 1, 1, 0, 0, 0, 1, 0])  # right on rows 0-3 and 6-7: 6 of 8
    after = torch.tensor([1, 0, 1, 0, 2, 2, 1, 0])  # wrong on rows 0-1, right on rows 4-5: also 6 of 8
    assert fraction_correct(before, labels) == fraction_correct(after, labels) == 0.75
    flips = flip_rates(before, after, labels)
    assert (flips.negative, flips.positive, flips.n) == (2 / 8, 2 / 8, 8)
    assert flips.as_dict() == {"negative": 0.25, "positive": 0.25, "n": 8}
    same = flip_rates(before, before, labels)
    assert (same.negative, same.positive) == (0.0, 0.0)
    assert flip_rates(before[:0], after[:0], labels[:0]).as_dict() == {"negative": None, "positive": None, "n": 0}


@pytest.mark.parametrize(("rates", "promoted", "violating"), [
    ({"a": 0.01, "b": 0.02}, True, []),
    ({"a": 0.02, "b": 0.0}, True, []),  # exactly the limit is allowed
    ({"a": 0.021, "b": 0.10}, False, ["a", "b"]),
    ({"c": 0.5}, True, []),  # the new task itself has no parent answers to flip
])
def test_max_negative_flip_rate_names_each_task_over_it(rates, promoted, violating) -> None:
    policy = PromotionPolicy("guarded", max_forgetting=1.0, max_negative_flip_rate=0.02)
    decision = decide(policy, kind="train", task="c", base=2, production=2, earlier_tasks=["a", "b"],
                      before={"a": 0.9, "b": 0.9}, after={"a": 0.9, "b": 0.9, "c": 0.9}, negative_flips=rates)
    assert decision.promoted is promoted
    assert [v.task for v in decision.violations] == violating
    assert all(v.rule == "max_negative_flip_rate" and v.after == rates[v.task] for v in decision.violations)
    for task in violating:
        assert f"task {task!r}" in decision.reason and "negative flips" in decision.reason
    unchecked = decide(PromotionPolicy("guarded", max_forgetting=1.0), kind="train", task="c", base=2, production=2,
                       earlier_tasks=["a", "b"], before={"a": 0.9, "b": 0.9}, after={"a": 0.9, "b": 0.9},
                       negative_flips=rates)
    assert unchecked.promoted
