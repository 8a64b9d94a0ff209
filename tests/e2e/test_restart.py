"""Stop and start the service over the same var dir: models, versions and predictions are all still there.

This runs `lifelong serve` itself (API and worker as its children) and stops it as a user would,
with one Ctrl-C (SIGINT), which must stop both children cleanly and say where the data lives.
"""

from __future__ import annotations

import signal


def test_restart_keeps_everything(service_factory, api_factory, tmp_path) -> None:
    var_dir = tmp_path / "var"
    first = service_factory(var_dir, serve=True)
    api = api_factory(first)
    task = api.digits[0]
    model = api.create_model("restart")
    api.learn(model, task, epochs=2)
    api.refresh(model, data={"inputs": task.x_test[:16].tolist()})
    before = {
        "model": api.get(f"/v1/models/{model}"),
        "versions": api.get(f"/v1/models/{model}/versions"),
        "detail": api.get(f"/v1/models/{model}/versions/2"),
        "evaluation": api.get(f"/v1/models/{model}/evaluation"),
        "jobs": api.get("/v1/jobs", model=model),
        "prediction": api.predict(model, task.name, task.x_test, probabilities=True),
        "task_free": api.http.post(f"/v1/models/{model}/predict",
                                   json={"inputs": task.x_test.tolist(), "probabilities": True}).json(),
    }
    assert before["task_free"]["labels"] and before["detail"]["task_free"]["tasks"]
    # A job still running at Ctrl-C goes back to the queue and runs again after the restart.
    long_job = api.submit_task(model, api.digits[1], epochs=5000, batch_size=8)["id"]
    api.wait_for(lambda: api.get(f"/v1/jobs/{long_job}")["state"] == "running", deadline_s=60, what="a running job")

    codes = first.stop(signal.SIGINT)
    assert codes == {"serve": 0}, first.logs()
    log = first.logs()
    assert "data lives in" in log and str(var_dir.resolve() / "blobs") in log
    assert "Hard time limit" not in log and "exited with 'signal" not in log

    second = service_factory(var_dir, serve=True)
    again = api_factory(second)
    assert again.get(f"/v1/models/{model}") == before["model"]
    assert again.get(f"/v1/models/{model}/versions") == before["versions"]
    assert again.get(f"/v1/models/{model}/versions/2") == before["detail"]
    assert again.get(f"/v1/models/{model}/evaluation") == before["evaluation"]
    assert again.get("/v1/jobs", model=model)[1:] == before["jobs"]
    assert again.predict(model, task.name, task.x_test, probabilities=True) == before["prediction"]
    assert again.http.post(f"/v1/models/{model}/predict",  # the statistics and predictors came back from disk
                           json={"inputs": task.x_test.tolist(), "probabilities": True}).json() == before["task_free"]

    resumed = again.wait_for(lambda: (job := again.get(f"/v1/jobs/{long_job}"))["state"] == "running" and job,
                             deadline_s=60, what="the interrupted job to run again")
    assert resumed["attempts"] == 1  # the interrupted attempt does not count against the job
    assert again.http.post(f"/v1/jobs/{long_job}/cancel").status_code == 202
    assert again.wait_job(long_job)["state"] == "cancelled"
    # The restarted worker takes new jobs on the same data.
    assert again.learn(model, again.digits[2], epochs=1) == 3
