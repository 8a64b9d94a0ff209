"""A model's λ selection through the `lifelong` command and the Python client, against the real service."""

from __future__ import annotations

from app.client import Client
from tests.client.conftest import ok_json
from tests.conftest import unique


def test_the_cli_and_client_set_and_show_a_models_lambda_selection(run, lifelong: Client) -> None:  # noqa: ANN001
    name = unique("selection-cli")
    created = run("models", "create", name, "--hidden", "8", "--lambda-selection", "mean")
    assert created.exit_code == 0, (created.stdout, created.stderr)
    assert "λ selection mean" in created.stdout
    assert lifelong.get_model(name)["lambda_selection"] == {"rule": "mean", "new_task_tolerance": 0.02}

    updated = ok_json(run("models", "update", name, "--lambda-selection", "constrained", "--new-task-tolerance",
                          "0.1", "--json"))
    assert updated["lambda_selection"] == {"rule": "constrained", "new_task_tolerance": 0.1}
    assert "constrained, new_task_tolerance 0.1" in run("models", "show", name).stdout
    assert run("models", "update", name, "--new-task-tolerance", "1.5").exit_code == 2  # a usage error, not a 422
    assert run("models", "update", name, "--lambda-selection", "best").exit_code == 2

    changed = lifelong.update_model(name, lambda_selection={"new_task_tolerance": 0.05})
    assert changed["lambda_selection"] == {"rule": "constrained", "new_task_tolerance": 0.05}  # the rule stays
    made = lifelong.create_model(unique("selection-client"), {"kind": "mlp", "input_shape": [64], "hidden": [8]},
                                 lambda_selection={"rule": "mean"})
    assert made["lambda_selection"]["rule"] == "mean"
