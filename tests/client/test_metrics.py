"""`/metrics` of the real service: Prometheus text with requests by route, predictions, cache, jobs, versions."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.client import Client, NotFound
from tests.client.conftest import Trained


def scrape(http: httpx.Client) -> dict[str, dict[tuple, float]]:
    response = http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return sum(v for key, v in samples.get(name, {}).items() if set(labels.items()) <= set(key))


def test_metrics_count_requests_predictions_jobs_and_versions(client: httpx.Client, lifelong: Client,
                                                              trained: Trained) -> None:
    task = trained.tasks[0]
    before = scrape(client)
    lifelong.predict(trained.model, task.x_test[:7], task=task.name)
    lifelong.predict(trained.model, task.x_test[:5], task=task.name)
    try:
        lifelong.get_model("no-such-model")
    except NotFound:
        pass
    after = scrape(client)

    route = "/v1/models/{name}/predict"
    assert value(after, "lifelong_http_requests_total", route=route, method="POST", status="200") - \
        value(before, "lifelong_http_requests_total", route=route, method="POST", status="200") == 2
    assert value(after, "lifelong_http_requests_total", route="/v1/models/{name}", status="404") >= 1
    assert value(after, "lifelong_http_request_duration_seconds_count", route=route) >= 2
    assert value(after, "lifelong_prediction_rows_total", model=trained.model) - \
        value(before, "lifelong_prediction_rows_total", model=trained.model) == 12
    assert value(after, "lifelong_prediction_cache_total", result="hit") >= 1
    assert value(after, "lifelong_prediction_cache_total", result="miss") >= 1

    assert value(after, "lifelong_jobs", kind="train", state="succeeded") >= 2
    assert "lifelong_job_queue_depth" in after
    assert value(after, "lifelong_job_duration_seconds_count", kind="train", state="succeeded") >= 2
    assert value(after, "lifelong_versions") >= 3 and value(after, "lifelong_models") >= 1
    # Raw paths never become labels: one series per route template.
    assert not any(trained.model in dict(key).get("route", "") for key in after["lifelong_http_requests_total"])
