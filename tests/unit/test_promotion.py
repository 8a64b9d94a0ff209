"""The promotion decision (app/aliases/promotion.py) on tables of accuracies: every policy, every rule."""

from __future__ import annotations

import pytest

from app.aliases.promotion import PromotionPolicy, decide

GUARDED = PromotionPolicy("guarded", max_forgetting=0.05)
BEFORE = {"a": 0.98, "b": 0.90}


def _train(policy: PromotionPolicy, after: dict[str, float], *, before: dict[str, float] | None = None,
           earlier: tuple[str, ...] = ("a", "b"), base: int = 2, production: int = 2):
    return decide(policy, kind="train", task="c", base=base, production=production, earlier_tasks=earlier,
                  before=BEFORE if before is None else before, after=after)


@pytest.mark.parametrize(
    ("after", "promoted", "violating"),
    [
        ({"a": 0.98, "b": 0.90, "c": 0.5}, True, []),  # nothing forgotten
        ({"a": 0.99, "b": 0.95, "c": 0.9}, True, []),  # better on both (backward transfer)
        ({"a": 0.93, "b": 0.85, "c": 0.9}, True, []),  # exactly 0.05 each: allowed (float noise included)
        ({"a": 0.929, "b": 0.90, "c": 0.9}, False, ["a"]),  # 0.051 on a
        ({"a": 0.50, "b": 0.40, "c": 1.0}, False, ["a", "b"]),  # both, however good the new task
    ],
)
def test_guarded_promotes_a_train_version_only_within_max_forgetting(after, promoted, violating) -> None:
    decision = _train(GUARDED, after)
    assert decision.promoted is promoted and decision.policy == "guarded"
    assert [v.task for v in decision.violations] == violating
    assert decision.alias == ("production" if promoted else "candidate")
    assert not decision.conflict


def test_a_violation_says_which_task_and_how_much() -> None:
    decision = _train(GUARDED, {"a": 0.60, "b": 0.89, "c": 0.99})
    [violation] = decision.violations
    assert (violation.task, violation.rule, violation.before, violation.after, violation.limit) == (
        "a", "max_forgetting", 0.98, 0.60, 0.05)
    assert violation.drop == pytest.approx(0.38)
    assert "'a'" in decision.reason and "0.38" in decision.reason and "max_forgetting 0.05" in decision.reason
    shown = decision.as_dict()
    assert shown["promoted"] is False and shown["alias"] == "candidate"
    assert shown["violations"] == [{"task": "a", "rule": "max_forgetting", "before": 0.98, "after": 0.60,
                                    "drop": pytest.approx(0.38), "limit": 0.05}]


@pytest.mark.parametrize("max_forgetting", [0.0, 0.1, 0.5])
def test_the_limit_is_the_models_own(max_forgetting: float) -> None:
    after = {"a": 0.98 - 0.09, "b": 0.90, "c": 0.9}
    decision = _train(PromotionPolicy("guarded", max_forgetting=max_forgetting), after)
    assert decision.promoted is (0.09 <= max_forgetting)


def test_min_accuracy_on_the_new_task() -> None:
    policy = PromotionPolicy("guarded", min_accuracy=0.8)
    assert _train(policy, {"a": 0.98, "b": 0.9, "c": 0.8}).promoted
    refused = _train(policy, {"a": 0.98, "b": 0.9, "c": 0.79})
    assert not refused.promoted
    assert [(v.task, v.rule, v.after, v.limit) for v in refused.violations] == [("c", "min_accuracy", 0.79, 0.8)]
    assert "below min_accuracy 0.8" in refused.reason


def test_a_new_task_without_eval_set_is_promoted_only_without_min_accuracy() -> None:
    unchecked = _train(GUARDED, {"a": 0.98, "b": 0.9})
    assert unchecked.promoted and unchecked.unchecked == ("c",) and "unchecked" in unchecked.reason
    blocked = _train(PromotionPolicy("guarded", min_accuracy=0.5), {"a": 0.98, "b": 0.9})
    assert not blocked.promoted and blocked.violations == () and blocked.unchecked == ("c",)
    assert "no eval set" in blocked.reason and "min_accuracy 0.5" in blocked.reason


def test_earlier_tasks_without_eval_set_are_reported_unchecked_not_blocking() -> None:
    decision = _train(GUARDED, {"a": 0.98, "c": 0.9}, before={"a": 0.98}, earlier=("a", "b"))
    assert decision.promoted and decision.unchecked == ("b",)


def test_a_first_task_has_nothing_to_forget() -> None:
    decision = _train(GUARDED, {"c": 0.7}, before={}, earlier=(), base=0, production=0)
    assert decision.promoted and decision.violations == ()


@pytest.mark.parametrize("policy", ["auto", "manual", "guarded"])
def test_when_production_moved_only_auto_conflicts(policy: str) -> None:
    decision = _train(PromotionPolicy(policy), {"a": 0.98, "b": 0.9, "c": 0.9}, base=2, production=3)
    assert not decision.promoted and "production moved from version 2 to 3" in decision.reason
    assert decision.conflict is (policy == "auto")


def test_auto_promotes_anything_and_manual_nothing() -> None:
    terrible = {"a": 0.0, "b": 0.0, "c": 0.0}
    assert _train(PromotionPolicy("auto"), terrible).promoted
    manual = _train(PromotionPolicy("manual"), {"a": 1.0, "b": 1.0, "c": 1.0})
    assert not manual.promoted and manual.alias == "candidate" and "manual" in manual.reason


@pytest.mark.parametrize(("policy", "base", "promoted"),
                         [("guarded", 2, True), ("guarded", 1, False), ("manual", 2, False), ("auto", 2, True)])
def test_a_refresh_is_promoted_when_it_starts_from_production(policy: str, base: int, promoted: bool) -> None:
    decision = decide(PromotionPolicy(policy), kind="importance", task="a", base=base, production=2,
                      before=BEFORE, after=BEFORE)
    assert decision.promoted is promoted and not decision.violations


def test_policies_round_trip_as_stored() -> None:
    stored = {"policy": "guarded", "max_forgetting": 0.1, "min_accuracy": 0.7, "min_task_free_accuracy": 0.8,
              "max_negative_flip_rate": 0.02}
    assert PromotionPolicy.of(stored).as_dict() == stored
    assert PromotionPolicy().as_dict() == {"policy": "guarded", "max_forgetting": 0.05, "min_accuracy": None,
                                           "min_task_free_accuracy": None,
     "max_negative_flip_rate": None}
    before = {"policy": "auto", "max_forgetting": 0.05, "min_accuracy": None}  # as stored before task-free answers
    assert PromotionPolicy.of(before).min_task_free_accuracy is None
