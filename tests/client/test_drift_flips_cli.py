"""Drift reports and flips through the Python client and the `lifelong` command, against the real service.

One model (promotion auto, so production follows each job) learns the first two digit tasks once for the
module; the client and the CLI then test batches for drift (a drift job, its report as a table and as
JSON, the kept reports newest first), set the model's drift alpha and its guard's max negative flip rate,
and show each version's flips against its parent in the accuracy matrix and in `evaluate`.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.client import Client, Conflict
from tests.client.conftest import ok_json, two_task_model
from tests.conftest import DigitsTask, unique


@pytest.fixture(scope="module")
def learned(lifelong: Client, digits: list[DigitsTask]) -> str:
    """A model that learned the first two digit tasks (versions 1 and 2; 2 is production)."""
    return two_task_model(lifelong, digits, "drift-cli")


@pytest.fixture(scope="module")
def first_rows(digits: list[DigitsTask], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first task's eval rows and labels as a .npz file, as a user would pass them."""
    path = tmp_path_factory.mktemp("drift-data") / "first.npz"
    np.savez(path, x=digits[0].x_test, y=digits[0].y_test)
    return path


def test_the_client_tests_a_batch_and_lists_the_reports(lifelong: Client, learned: str, digits) -> None:  # noqa: ANN001
    first, second = digits[0], digits[1]
    job = lifelong.drift(learned, first.x_test)
    assert job.kind == "drift" and job.wait(timeout=60).succeeded, job.data
    report = job.drift
    assert report["version"] == 2 and report["n"] == len(first.x_test) and report["alpha"] == 0.01
    assert set(report["tasks"]) == {first.name, second.name} and report["nearest_task"] == first.name
    assert report["tasks"][first.name]["drift"] is False and report["tasks"][second.name]["drift"] is True
    assert report["drift"] is True and report["tasks"][first.name]["at_this_trunk"] is True
    at_one = lifelong.drift(learned, (second.x_test, second.y_test), version=1).wait(timeout=60)
    assert at_one.drift["version"] == 1 and set(at_one.drift["tasks"]) == {first.name}

    reports = lifelong.drift_reports(learned)
    assert [r["job"] for r in reports[:2]] == [at_one.id, job.id] and reports[1]["source"] == "drift"
    assert reports[1]["tasks"] == report["tasks"] and reports[1]["nearest_task"] == first.name
    assert len(lifelong.drift_reports(learned, limit=1)) == 1
    with pytest.raises(Conflict):
        lifelong.drift(learned, first.x_test[:4], version=0)  # version 0 learned no task: nothing to test against


def test_the_client_sends_texts_inline_and_a_dataset_by_id() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"id": "j", "kind": "drift", "model": "m", "state": "queued"})

    with Client("http://lifelong.test", transport=httpx.MockTransport(answer)) as client:
        client.drift("m", ["a text", "another"], alias="candidate")
        client.drift("m", "ds-1", version=3, queue="gpu")
    texts, dataset = (json.loads(request.content) for request in seen)
    assert texts == {"data": {"texts": ["a text", "another"]}, "alias": "candidate"}
    assert dataset == {"data": {"dataset": "ds-1"}, "version": 3, "queue": "gpu"}


def test_cli_drift_prints_the_report_and_drift_reports_lists_them(
        run, learned: str, first_rows: Path, digits) -> None:  # noqa: ANN001
    first, second = digits[0], digits[1]
    printed = run("drift", learned, str(first_rows))
    assert printed.exit_code == 0, (printed.stdout, printed.stderr)
    for part in ("statistic", "p-value", "at this trunk", first.name, second.name, "DRIFT",
                 f"nearest task: {first.name}", "alpha: 0.01", f"n: {len(first.x_test)}",
                 f"drift: yes ({second.name})"):
        assert part in printed.stdout, part
    job = ok_json(run("drift", learned, str(first_rows), "--json"))
    assert job["kind"] == "drift" and job["state"] == "succeeded" and job["result"]["nearest_task"] == first.name
    dataset = ok_json(run("datasets", "upload", str(first_rows), "--json"))["id"]
    by_id = ok_json(run("drift", learned, dataset, "--version", "1", "--json"))
    assert by_id["result"]["version"] == 1 and list(by_id["result"]["tasks"]) == [first.name]

    listed = ok_json(run("drift-reports", learned, "--json"))
    assert [r["job"] for r in listed[:2]] == [by_id["id"], job["id"]]
    assert listed[1]["tasks"] == job["result"]["tasks"] and listed[1]["source"] == "drift"
    assert len(ok_json(run("drift-reports", learned, "--limit", "2", "--json"))) == 2
    table = run("drift-reports", learned, "--limit", "3")
    assert table.exit_code == 0, table.stderr
    for part in ("drift reports, newest first", "source", "drifted", "nearest task", by_id["id"], job["id"],
                 second.name):
        assert part in table.stdout, part
    queued = run("drift", learned, str(first_rows), "--detach")
    assert queued.exit_code == 0, queued.stderr
    watched = ok_json(run("jobs", "watch", queued.stdout.strip(), "--json"))
    assert watched["kind"] == "drift" and watched["state"] == "succeeded"
    assert run("drift", learned, str(first_rows), "--version", "0").exit_code == 3  # 409: no task to test against
    assert run("drift-reports", learned, "--limit", "0").exit_code == 2


def test_cli_models_set_drift_alpha_and_max_negative_flip_rate(run, learned: str, first_rows: Path) -> None:  # noqa: ANN001
    try:
        updated = run("models", "update", learned, "--drift-alpha", "0.05", "--max-negative-flip-rate", "0.1",
                      "--promotion", "guarded")
        assert updated.exit_code == 0, (updated.stdout, updated.stderr)
        assert "drift alpha 0.05" in updated.stdout and "max_negative_flip_rate 0.1" in updated.stdout
        shown = ok_json(run("models", "show", learned, "--json"))
        assert shown["drift_alpha"] == 0.05 and shown["promotion"]["max_negative_flip_rate"] == 0.1
        assert ok_json(run("drift", learned, str(first_rows), "--json"))["result"]["alpha"] == 0.05
        dropped = ok_json(run("models", "update", learned, "--no-max-negative-flip-rate", "--json"))
        assert dropped["promotion"]["max_negative_flip_rate"] is None and dropped["drift_alpha"] == 0.05
        assert "drift alpha" in run("models", "show", learned).stdout
        assert run("models", "update", learned, "--drift-alpha", "1.5").exit_code == 2  # a usage error, not a 422
        assert run("models", "update", learned, "--max-negative-flip-rate", "2").exit_code == 2
    finally:
        run("models", "update", learned, "--drift-alpha", "0.01", "--promotion", "auto")
    created = ok_json(run("models", "create", unique("drift-options"), "--hidden", "8", "--drift-alpha", "0.02",
                          "--max-negative-flip-rate", "0.2", "--json"))
    assert created["drift_alpha"] == 0.02 and created["promotion"]["max_negative_flip_rate"] == 0.2


def test_the_matrix_and_evaluate_show_flips(run, lifelong: Client, learned: str, first_rows: Path,  # noqa: ANN001
                                            digits) -> None:  # noqa: ANN001
    first = digits[0]
    matrix = lifelong.evaluation(learned)
    rows = {row["version"]: row for row in matrix["rows"]}
    assert rows[1]["negative_flips"] == {} and set(rows[2]["negative_flips"]) == {first.name}
    printed = run("evaluation", learned)
    assert printed.exit_code == 0 and "neg. flips" in printed.stdout, printed.stdout
    assert f"{rows[2]['negative_flips'][first.name]:.4f} ({first.name})" in printed.stdout
    assert ok_json(run("evaluation", learned, "--json"))["rows"][1]["positive_flips"] == rows[2]["positive_flips"]

    scored = lifelong.evaluate(learned, first_rows, task=first.name)
    assert scored["parent"] == 1 and set(scored["negative_flips"]) == set(scored["positive_flips"]) == {first.name}
    evaluated = run("evaluate", learned, "--data", str(first_rows), "--task", first.name)
    assert evaluated.exit_code == 0, evaluated.stderr
    for part in ("flips against the parent, version 1", "negative flips", "positive flips",
                 f"{scored['negative_flips'][first.name]:.4f}", f"{scored['positive_flips'][first.name]:.4f}"):
        assert part in evaluated.stdout, part
    at_one = run("evaluate", learned, "--data", str(first_rows), "--task", first.name, "--version", "1")
    assert "flips against the parent: none" in at_one.stdout  # version 1's parent knew no task
    assert ok_json(run("evaluate", learned, "--data", str(first_rows), "--json"))["parent"] == 1


def test_the_help_says_what_the_new_commands_and_options_do(run) -> None:  # noqa: ANN001
    drift = run("drift", "--help").stdout
    for part in ("MODEL", "DATA", "--version", "--alias", "--wait", "--detach", "--json", "nearest task", "p-value"):
        assert part in drift, part
    reports = run("drift-reports", "--help").stdout
    assert "--limit" in reports and "newest first" in reports
    for command in ("create", "update"):
        text = run("models", command, "--help").stdout
        assert "--drift-alpha" in text and "--max-negative-flip-rate" in text and "negative flips" in text
    assert "--no-max-negative-flip-rate" in run("models", "update", "--help").stdout
    assert "neg. flips" in run("evaluation", "--help").stdout and "flips" in run("evaluate", "--help").stdout
    assert "drift" in run("--help").stdout and "drift-reports" in run("--help").stdout
