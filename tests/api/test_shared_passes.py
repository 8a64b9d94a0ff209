"""Concurrent predictions over HTTP, through the shared forward passes (app/predictions/batching.py).

Whether requests happen to share a pass depends on timing; what must hold either way, and is checked
here, is that every caller gets exactly the answer it gets alone.
"""

from __future__ import annotations

import concurrent.futures

import httpx
import numpy as np

NPY = {"content-type": "application/x-npy"}


def test_concurrent_callers_each_get_the_answer_they_get_alone(api, client: httpx.Client) -> None:
    model = api.create_model("shared")
    task = api.digits[0]
    api.learn(model, task, epochs=1)
    requests = [task.x_test[i : i + 1 + i % 5] for i in range(0, 48, 2)]  # 1–5 rows each, .npy: the thread pool
    url = f"/v1/models/{model}/predict?task={task.name}&probabilities=true"
    alone = [client.post(url, content=api.npy_bytes(x), headers=NPY).json() for x in requests]

    def send(x: np.ndarray) -> dict:
        response = client.post(url, content=api.npy_bytes(x), headers=NPY)
        assert response.status_code == 200, response.text
        return response.json()

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        together = list(pool.map(send, requests))
    for x, one, shared in zip(requests, alone, together, strict=True):
        assert shared["predictions"] == one["predictions"] and len(shared["predictions"]) == len(x)
        np.testing.assert_allclose(shared["probabilities"], one["probabilities"], rtol=1e-5, atol=1e-6)
