"""How benchmarks/defaults.py judges the "defaults that protect" targets, on records made by hand."""

from __future__ import annotations

import pytest

from benchmarks.defaults import compare, forgetting_resolution


def _run(forgetting: float, new_task: float, eval_rows: list[int] | None = None) -> dict:
    return {"forgetting": forgetting, "new_task_accuracy": new_task} | ({"eval_rows": eval_rows} if eval_rows else {})


def test_one_eval_row_of_each_earlier_task_is_the_resolution() -> None:
    assert forgetting_resolution([300, 400]) == pytest.approx(1 / 300)  # the last task is never forgotten
    assert forgetting_resolution([100, 50, 999]) == pytest.approx((1 / 100 + 1 / 50) / 2)
    assert forgetting_resolution([300]) == 0.0


def test_a_third_of_what_fine_tuning_forgets_where_it_forgets_measurably() -> None:
    rows = [300, 400]
    held = compare([_run(0.30, 0.9, rows)], [_run(0.09, 0.9, rows)])
    assert held["forgetting_target_holds"] and held["forgetting_ratio"] == pytest.approx(0.3)
    assert not held["finetune_below_resolution"]
    missed = compare([_run(0.30, 0.9, rows)], [_run(0.11, 0.9, rows)])
    assert not missed["forgetting_target_holds"] and missed["seeds_forgetting_target_holds"] == 0


def test_below_one_eval_row_the_target_asks_only_that_mas_forget_no_more_than_one_row() -> None:
    rows = [300, 400]  # one row of the first task: 0.0033
    noise = compare([_run(0.0013, 0.7, rows)], [_run(0.0013, 0.7, rows)])
    assert noise["finetune_below_resolution"] and noise["forgetting_ratio"] == pytest.approx(1.0)
    assert noise["forgetting_target_holds"] and noise["seeds_forgetting_target_holds"] == 1
    worse = compare([_run(0.0013, 0.7, rows)], [_run(0.0067, 0.7, rows)])  # MAS forgets 2 rows: not excused
    assert not worse["forgetting_target_holds"]


def test_records_without_eval_rows_are_judged_by_the_plain_ratio() -> None:
    assert not compare([_run(0.0013, 0.7)], [_run(0.0013, 0.7)])["forgetting_target_holds"]
    assert compare([_run(0.0, 0.7)], [_run(0.0, 0.7)])["forgetting_target_holds"]


def test_the_new_task_target_is_on_the_mean_over_seeds() -> None:
    finetune = [_run(0.3, 0.70), _run(0.3, 0.70)]
    result = compare(finetune, [_run(0.0, 0.66), _run(0.0, 0.69)])  # −4 and −1 points: mean −2.5
    assert result["new_task_target_holds"] and result["seeds_new_task_target_holds"] == 1
    assert result["new_task_points"]["mean"] == pytest.approx(-2.5)
    assert not compare(finetune, [_run(0.0, 0.66), _run(0.0, 0.67)])["new_task_target_holds"]
