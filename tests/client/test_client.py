"""The Python client against the real service: every endpoint, numpy in and out, errors with the server's detail."""

from __future__ import annotations

import math

import httpx
import lifelong_client as lc
import numpy as np
import pytest
from lifelong_client import Client, Job

from tests.client.conftest import FAST, Trained
from tests.conftest import Api, DigitsTask, unique

MLP = {"kind": "mlp", "input_shape": [64], "hidden": [16]}


def test_health(lifelong: Client) -> None:
    assert lifelong.healthz() == {"status": "ok"}
    assert lifelong.readyz()["status"] == "ready"


def test_models_create_list_get_delete(lifelong: Client) -> None:
    name = unique("cl")
    created = lifelong.create_model(name, MLP, seed=3)
    assert created["name"] == name and created["head"] == 0 and created["tasks"] == []
    assert name in [m["name"] for m in lifelong.list_models()]
    assert lifelong.get_model(name)["seed"] == 3
    with pytest.raises(lc.Conflict) as taken:
        lifelong.create_model(name, MLP)
    assert taken.value.status_code == 409 and name in taken.value.message
    lifelong.delete_model(name)
    with pytest.raises(lc.NotFound) as gone:
        lifelong.get_model(name)
    assert gone.value.status_code == 404 and isinstance(gone.value.detail, str)


def test_errors_carry_the_servers_detail(lifelong: Client) -> None:
    with pytest.raises(lc.Invalid) as invalid:
        lifelong.create_model("Not A Name", MLP)
    assert invalid.value.status_code == 422 and "name" in invalid.value.message
    with pytest.raises(lc.NotFound):
        lifelong.get_job("nope")
    assert issubclass(lc.Unavailable, lc.LifelongError)


def test_an_unreachable_server_is_a_connection_error(service) -> None:  # noqa: ANN001
    from tests.conftest import free_port

    with Client(f"http://127.0.0.1:{free_port()}", timeout=2) as nowhere, pytest.raises(lc.ConnectionFailed):
        nowhere.healthz()


def test_api_key_is_sent_as_bearer(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def answer(request):  # noqa: ANN001, ANN202
        seen["auth"] = request.headers.get("authorization")
        return httpx.Response(200, json={"status": "ok"})

    monkeypatch.setenv("LIFELONG_API_KEY", "from-env")
    with Client("http://x", transport=httpx.MockTransport(answer)) as keyed:
        keyed.healthz()
    assert seen["auth"] == "Bearer from-env"


def test_datasets_from_arrays_npz_and_csv(lifelong: Client, digits: list[DigitsTask], tmp_path) -> None:  # noqa: ANN001
    task = digits[0]
    from_arrays = lifelong.upload_dataset(task.x_test, task.y_test)
    assert from_arrays["n"] == len(task.x_test) and from_arrays["has_labels"]
    npz = tmp_path / "eval.npz"
    np.savez(npz, x=task.x_test, y=task.y_test)
    assert lifelong.upload_dataset(npz)["n"] == len(task.x_test)
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b,label\n0.5,1.0,1\n0.25,2.0,0\n")
    uploaded = lifelong.upload_dataset(str(csv))
    assert uploaded["input_shape"] == [2] and uploaded["has_labels"]
    assert lifelong.get_dataset(uploaded["id"])["sha256"] == uploaded["sha256"]
    assert lifelong.data_ref(uploaded) == {"dataset": uploaded["id"]} == lifelong.data_ref(uploaded["id"])


def test_predict_numpy_matches_the_json_endpoint(lifelong: Client, trained: Trained, api: Api) -> None:
    task = trained.tasks[0]
    answer = lifelong.predict(trained.model, task.x_test, task=task.name, probabilities=True)
    assert answer.version == trained.versions[-1]
    assert answer.predictions.dtype == np.int64 and answer.predictions.shape == (len(task.x_test),)
    assert answer.probabilities is not None and answer.probabilities.shape[0] == len(task.x_test)
    by_json = api.predict(trained.model, task.name, task.x_test)
    assert answer.predictions.tolist() == by_json["predictions"]
    assert (answer.predictions == task.y_test).mean() > 0.5
    older = lifelong.predict(trained.model, task.x_test[:3], task=task.name, version=trained.versions[0])
    assert older.version == trained.versions[0] and older.probabilities is None
    with pytest.raises(lc.NotFound):
        lifelong.predict(trained.model, task.x_test[:3], task="no-such-task")


def test_versions_checkpoint_importance_evaluation(lifelong: Client, trained: Trained) -> None:
    versions = lifelong.list_versions(trained.model)
    assert [v["version"] for v in versions] == [0, *trained.versions]
    assert [v["kind"] for v in versions] == ["init", "train", "train"]
    detail = lifelong.get_version(trained.model, trained.versions[-1])
    assert detail["tasks"] == [t.name for t in trained.tasks] and set(detail["accuracy"]) == set(detail["tasks"])
    theta = lifelong.checkpoint(trained.model, trained.versions[-1])
    assert theta and all(isinstance(a, np.ndarray) for a in theta.values())
    omega = lifelong.importance(trained.model, trained.versions[-1])
    assert set(omega) <= set(theta) and all((a >= 0).all() for a in omega.values())
    matrix = lifelong.evaluation(trained.model)
    assert matrix["tasks"] == [t.name for t in trained.tasks] and len(matrix["rows"]) == 2
    assert 0 <= matrix["average_accuracy"] <= 1


def test_train_wait_refresh_head_and_cancel(lifelong: Client, digits: list[DigitsTask], tmp_path) -> None:  # noqa: ANN001
    name = unique("flow")
    lifelong.create_model(name, MLP)
    task = digits[0]
    train = tmp_path / "train.npz"
    np.savez(train, x=task.x_train, y=task.y_train)
    seen: list[str] = []
    job = lifelong.add_task(name, task.name, train, (task.x_test, task.y_test), lambda_=2.0, **FAST)
    assert isinstance(job, Job) and job.state in ("queued", "running")
    job.wait(progress=lambda j: seen.append(j.state), timeout=120, poll_s=0.05)
    assert job.succeeded and job.version == 1 and seen[-1] == "succeeded"
    assert [j.id for j in lifelong.list_jobs(model=name)] == [job.id]
    assert lifelong.list_jobs(model=name, state="failed") == []

    refresh = lifelong.refresh_importance(name, task.x_test, mode="replace").wait(timeout=120)
    assert refresh.succeeded and refresh.kind == "importance" and refresh.version == 2
    assert lifelong.get_model(name)["head"] == 2
    assert lifelong.set_head(name, 1)["head"] == 1

    with pytest.raises(lc.Conflict):
        lifelong.add_task(name, task.name, train)  # the model already has this task
    long = lifelong.add_task(name, digits[1].name, (digits[1].x_train, digits[1].y_train), epochs=5000, batch_size=8)
    with pytest.raises(lc.WaitTimeout):
        long.wait(timeout=0.2, poll_s=0.05)
    long.cancel()
    assert long.wait(timeout=60, poll_s=0.05).state == "cancelled" and long.version is None
    with pytest.raises(lc.Conflict):
        lifelong.cancel_job(long.id)


def test_progress_bar_shows_epoch_and_loss(capsys: pytest.CaptureFixture[str]) -> None:
    job = Job(client=None, data={"id": "j", "kind": "train", "model": "m", "task": "t", "state": "running",  # type: ignore[arg-type]
                                 "progress": {"done": 25, "total": 40, "unit": "steps", "loss": 0.5}})
    with lc.ProgressBar(epochs=4) as bar:
        bar(job)
    drawn = capsys.readouterr().err
    assert "25/40" in drawn and "epoch 3/4" in drawn and "loss 0.5000" in drawn


def test_queues_from_the_client(lifelong: Client, digits: list[DigitsTask]) -> None:
    name = unique("queued")
    assert lifelong.create_model(name, MLP, queue="gpu")["queue"] == "gpu"
    task = digits[0]
    on_model_queue = lifelong.add_task(name, task.name, (task.x_train, task.y_train), **FAST).wait(timeout=120)
    # The embedded worker takes both queues, so a gpu-queue model still learns here; on the CPU.
    assert on_model_queue.succeeded and on_model_queue.data["queue"] == "gpu"
    assert on_model_queue.data["device"] == "cpu"
    refresh = lifelong.refresh_importance(name, task.x_test, queue="cpu").wait(timeout=120)
    assert refresh.succeeded and refresh.data["queue"] == "cpu"
    with pytest.raises(lc.Invalid):
        lifelong.add_task(name, digits[1].name, (digits[1].x_train, digits[1].y_train), queue="tpu")  # type: ignore[arg-type]


def test_lambda_selection_from_the_client(lifelong: Client, digits: list[DigitsTask]) -> None:
    name = unique("rules")
    lifelong.create_model(name, MLP)
    first, second = digits[0], digits[1]
    assert lifelong.add_task(name, first.name, (first.x_train, first.y_train), **FAST).wait(timeout=120).succeeded
    job = lifelong.add_task(name, second.name, (second.x_train, second.y_train), lambda_grid=[0.01, 100.0],
                            lambda_selection="constrained", new_task_tolerance=0.03, **FAST).wait(timeout=120)
    assert job.succeeded, job.data
    choice = job.lambda_selection
    assert choice["rule"] == "constrained" and choice["new_task_tolerance"] == 0.03
    # Slices of about 26 rows: one row (0.038) is a coarser step than 0.03, so the rule compared losses.
    rows = math.ceil(0.1 * len(second.x_train))
    assert rows * 0.03 < 1 and choice["basis"] == "loss" and choice["lambda"] == job.data["result"]["lambda"]
    assert set(choice["admissible"]) <= {0.01, 100.0} and choice["lambda"] in choice["admissible"]
    mean = lifelong.add_task(name, digits[2].name, (digits[2].x_train, digits[2].y_train), lambda_grid=[0.01, 100.0],
                             lambda_selection="mean", **FAST).wait(timeout=120)
    assert mean.succeeded and mean.lambda_selection["rule"] == "mean" and mean.lambda_selection["basis"] == "accuracy"
    with pytest.raises(lc.Invalid) as refused:
        lifelong.add_task(name, "another", (first.x_train, first.y_train), lambda_=1.0, lambda_selection="mean")
    assert "lambda_selection" in str(refused.value)
