"""Jobs through a real worker: conflicts on a moved head, cancellation, listing."""

from __future__ import annotations


def _versions(api, model: str) -> list[int]:
    return [v["version"] for v in api.get(f"/v1/models/{model}/versions")]


def test_two_tasks_on_the_same_base_one_conflicts(api) -> None:
    first, second = api.digits[0], api.digits[1]
    model = api.create_model("conflict", promotion={"policy": "auto"})  # guarded would keep the loser as candidate
    jobs = [api.submit_task(model, task, base_version=0) for task in (first, second)]
    finished = [api.wait_job(job["id"]) for job in jobs]
    states = sorted(job["state"] for job in finished)
    assert states == ["failed", "succeeded"], finished
    [loser] = [job for job in finished if job["state"] == "failed"]
    [winner] = [job for job in finished if job["state"] == "succeeded"]
    assert loser["error"]["type"] == "conflict" and "production moved" in loser["error"]["message"]
    assert loser["result"] is None
    assert _versions(api, model) == [0, 1]
    assert api.get(f"/v1/models/{model}")["tasks"] == [winner["task"]]
    assert [v["job"] for v in api.get(f"/v1/models/{model}/versions")] == [None, winner["id"]]


def test_cancel_a_running_job_creates_nothing(api) -> None:
    task = api.digits[0]
    model = api.create_model("cancel")
    # Long enough to be caught running: thousands of epochs of small batches.
    job = api.submit_task(model, task, epochs=5000, batch_size=8)

    def running_with_progress():
        current = api.get(f"/v1/jobs/{job['id']}")
        return current["state"] == "running" and current["progress"] and current["progress"]["done"] > 0

    api.wait_for(running_with_progress, deadline_s=60, what="the job to make progress")
    refused = api.http.delete(f"/v1/models/{model}")
    assert refused.status_code == 409 and "cancel them first" in refused.json()["detail"]
    response = api.http.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    finished = api.wait_job(job["id"], deadline_s=30)
    assert finished["state"] == "cancelled" and finished["result"] is None
    assert finished["progress"]["done"] < finished["progress"]["total"]
    assert _versions(api, model) == [0] and api.get(f"/v1/models/{model}")["head"] == 0
    again = api.http.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]


def test_cancel_a_queued_job_at_once(api) -> None:
    task, other = api.digits[1], api.digits[2]
    model = api.create_model("queued")
    blocker = api.submit_task(model, task, epochs=5000, batch_size=8)
    queued = api.submit_task(model, other, base_version=0)
    response = api.http.post(f"/v1/jobs/{queued['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["state"] == "cancelled" and response.json()["finished_at"] is not None
    api.http.post(f"/v1/jobs/{blocker['id']}/cancel")
    assert api.wait_job(blocker["id"])["state"] == "cancelled"
    assert api.get(f"/v1/jobs/{queued['id']}")["attempts"] == 0
    assert _versions(api, model) == [0]


def test_list_jobs_newest_first_with_filters(api) -> None:
    task = api.digits[2]
    model = api.create_model("listing")
    api.learn(model, task)
    api.refresh(model, data={"inputs": task.x_test[:10].tolist()})
    jobs = api.get("/v1/jobs", model=model)
    assert [j["kind"] for j in jobs] == ["importance", "train"]
    assert jobs[0]["created_at"] >= jobs[1]["created_at"]
    assert all(j["model"] == model for j in jobs)
    assert [j["id"] for j in api.get("/v1/jobs", model=model, state="succeeded")] == [j["id"] for j in jobs]
    assert api.get("/v1/jobs", model=model, state="failed") == []
    assert len(api.get("/v1/jobs", limit=1)) == 1


def test_a_job_past_its_soft_time_limit_fails_as_timeout(service_factory, api_factory) -> None:
    limited = service_factory(env={"LIFELONG_JOB_SOFT_TIME_LIMIT_S": "2", "LIFELONG_JOB_HARD_TIME_LIMIT_S": "30"})
    api = api_factory(limited)
    model = api.create_model("timeout")
    job = api.wait_job(api.submit_task(model, api.digits[0], epochs=5000, batch_size=8)["id"])
    assert job["state"] == "failed" and job["error"]["type"] == "timeout", job
    assert job["progress"]["done"] < job["progress"]["total"]
    assert _versions(api, model) == [0]


def test_a_job_says_its_queue_and_which_worker_and_device_ran_it(api) -> None:
    model = api.create_model("where")
    queued = api.submit_task(model, api.digits[0], epochs=1)
    assert queued["queue"] == "cpu" and queued["worker"] is None and queued["device"] is None
    assert queued["precision"] is None
    job = api.wait_job(queued["id"])
    assert job["state"] == "succeeded", job
    # The embedded worker is named lifelong@<host>, takes both queues, and has no GPU here: fp32.
    assert job["worker"].startswith("lifelong@") and job["device"] == "cpu" and job["precision"] == "fp32"
    assert api.get(f"/v1/models/{model}")["queue"] == "cpu"
