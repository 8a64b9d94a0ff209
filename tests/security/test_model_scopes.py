"""Keys scoped to models (issue 25 item 11), against the real service over HTTP.

The matrix: every operation of the live OpenAPI, at each scope (read, write, admin), called by a plain key on
one model and by a key of the same scope scoped to models on its twin (a model made the same way, reached by
name or by prefix) must get the same status; on a model outside the scope, the scoped key gets the very 404 a
model that does not exist gets, and nothing of that model changes. Jobs follow their model; the operations
that name no model (lists, creating a model, datasets, keys) have their own expectations, and an operation
nobody classified fails the test. The API runs without a worker here, so jobs stay queued and the twins stay
alike; a last test learns a task with a worker through a scoped key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import Service, free_port, mlp_payload, npz_bytes, unique, wait_for
from tests.security.conftest import run_cli

LEVELS = ("read", "write", "admin")
RANK = {level: rank for rank, level in enumerate(LEVELS)}
MODEL_PATH = "/v1/models/{name}"
JOB_PATHS = ("/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel")
# Operations that name no model, and what a scoped key gets from each (checked one by one below).
UNSCOPED = {
    ("get", "/v1/models"), ("post", "/v1/models"), ("get", "/v1/jobs"),
    ("get", "/v1/datasets"), ("post", "/v1/datasets"), ("get", "/v1/datasets/{dataset_id}"),
    ("delete", "/v1/datasets/{dataset_id}"),
    ("get", "/v1/keys"), ("post", "/v1/keys"), ("delete", "/v1/keys/{key_id}"),
    ("get", "/v1/architectures"),
}
HOOK = {"url": "http://127.0.0.1:9/hook", "events": ["job.finished"], "secret": "s3cret"}


def bodies(dataset: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Bodies that do real work where one is easy to give (the rest get `{}`: both twins answer it alike)."""
    data = {"dataset": dataset}
    return {
        ("patch", MODEL_PATH): {"drift_alpha": 0.02},
        ("post", f"{MODEL_PATH}/tasks"): {"task": "second", "train": data, "epochs": 1},
        ("post", f"{MODEL_PATH}/importance"): {"data": data},
        ("put", f"{MODEL_PATH}/head"): {"version": 0},
        ("put", f"{MODEL_PATH}/aliases/{{alias}}"): {"version": 0, "reason": "matrix"},
        ("post", f"{MODEL_PATH}/webhooks"): HOOK,
        ("post", f"{MODEL_PATH}/evaluate"): {"task": "first", "data": data},
        ("post", f"{MODEL_PATH}/drift"): {"data": data},
        ("put", f"{MODEL_PATH}/shadow"): {"alias": "candidate", "fraction": 0.5},
        ("post", f"{MODEL_PATH}/predict"): {"inputs": [[0.0] * 64]},
    }


PARAMS = {
    ("get", f"{MODEL_PATH}/predict"): {"inputs": "[[" + ",".join(["0"] * 64) + "]]"},
    ("get", f"{MODEL_PATH}/versions/{{number}}/export"): {"task": "first", "format": "onnx"},
    ("get", f"{MODEL_PATH}/versions/{{number}}/importance"): {"part": "total"},
}


def operations(http: httpx.Client) -> list[tuple[str, str]]:
    """Every /v1 operation, the deletions last and the model's own deletion very last (each twin loses its
    model at the same step, after every other operation has run on it)."""
    spec = http.get("/openapi.json").json()
    found = [(method, path) for path, item in spec["paths"].items() for method in item
             if method in ("get", "post", "put", "patch", "delete") and path.startswith("/v1/")]
    return sorted(found, key=lambda op: (op[0] == "delete", op == ("delete", MODEL_PATH)))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_cli_key(var_dir: Path, scope: str, *extra: str) -> str:
    done = run_cli(var_dir, "keys", "create", "--scope", scope, *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def http_key(service: Service, admin: str, scope: str, *, models: list[str] | None = None,
             prefix: str | None = None, name: str | None = None) -> str:
    """A key made over HTTP by the admin key, with the client: a CLI run costs an interpreter's start (seconds),
    and the CLI's own scoped keys are tested in test_keys_carry_their_scope_over_http_the_cli_and_the_client."""
    from app.client import Client

    with Client(service.url, api_key=admin) as client:
        return client.create_key(scope, name, models=models, model_prefix=prefix)["key"]


class Twin:
    """A model made the same way as its twins: a webhook, a queued job, an alias `candidate`."""

    def __init__(self, http: httpx.Client, name: str, dataset: str):
        self.name = name
        assert http.post("/v1/models", json=mlp_payload(name)).status_code == 201
        hook = http.post(f"/v1/models/{name}/webhooks", json=HOOK)
        assert hook.status_code == 201, hook.text
        self.hook = hook.json()["id"]
        made = http.post(f"/v1/models/{name}/tasks", json={"task": "first", "train": {"dataset": dataset}})
        assert made.status_code == 202, made.text
        self.job = made.json()["id"]
        assert http.put(f"/v1/models/{name}/aliases/candidate", json={"version": 0}).status_code == 200

    def url(self, path: str) -> str:
        values = {"name": self.name, "number": "0", "alias": "candidate", "webhook_id": str(self.hook),
                  "job_id": self.job}
        return re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], path)


@pytest.fixture(scope="module")
def scoped_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    """The API alone (no worker: jobs stay queued) with an admin key that reaches every model."""
    var_dir = tmp_path_factory.mktemp("scoped") / "var"
    admin = make_cli_key(var_dir, "admin", "--name", "root")
    running = Service(var_dir=var_dir, port=free_port(), env={})
    running.start("api", "api", "--port", str(running.port))
    running.wait_healthy()
    yield running, admin
    running.close()


def labelled_data(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return npz_bytes(x=rng.random((16, 64), dtype=np.float32), y=rng.integers(0, 2, 16))


def call(http: httpx.Client, method: str, url: str, token: str, body: dict[str, Any] | None,
         params: dict[str, str] | None) -> httpx.Response:
    json = (body if body is not None else {}) if method in ("post", "put", "patch") else None
    return http.request(method, url, headers=bearer(token), json=json, params=params)


@pytest.mark.parametrize("reach", ["by-name", "by-prefix"])
def test_a_scoped_key_gets_what_a_plain_key_gets_in_scope_and_404_outside(scoped_api, reach) -> None:
    service, admin = scoped_api
    tag = unique("m")
    mine, prefix = f"{tag}-mine", f"{tag}-team-"
    inside = mine if reach == "by-name" else f"{prefix}x"
    plain = {level: http_key(service, admin, level) for level in LEVELS}
    scoped = {level: http_key(service, admin, level, models=[mine, f"{tag}-other-name"], prefix=prefix)
              for level in LEVELS}
    with service.client() as http:
        http.headers.update(bearer(admin))
        dataset = http.post("/v1/datasets", files={"file": ("d.npz", labelled_data(1))}).json()["id"]
        twin, own, outside = (Twin(http, name, dataset) for name in (f"{tag}-plain", inside, f"{tag}-theirs"))
        missing = f"{tag}-missing"
        ops = operations(http)
        model_ops = [op for op in ops if op[1].startswith(MODEL_PATH)]
        job_ops = [op for op in ops if op[1] in JOB_PATHS]
        unclassified = set(ops) - set(model_ops) - set(job_ops) - UNSCOPED
        assert not unclassified, f"operations nobody decided a model scope for: {unclassified}"
        assert len(model_ops) >= 30, model_ops
        given = bodies(dataset)
        for level in LEVELS:
            for op in model_ops + job_ops:
                method, path = op
                body, params = given.get(op), PARAMS.get(op)
                expected = call(http, method, twin.url(path), plain[level], body, params)
                got = call(http, method, own.url(path), scoped[level], body, params)
                assert got.status_code == expected.status_code, (level, op, expected.text, got.text)
                assert got.status_code != 500, (level, op, got.text)
                # Outside the scope: the answer a model (a job) that does not exist gets, word for word.
                refused = call(http, method, outside.url(path), scoped[level], body, params)
                hidden, absent = (outside.name, missing) if op in model_ops else (outside.job, "0" * 32)
                answer = call(http, method, outside.url(path).replace(hidden, absent), scoped[level], body, params)
                assert refused.status_code == answer.status_code, (level, op, refused.text, answer.text)
                assert refused.text.replace(hidden, absent) == answer.text, (level, op, refused.text, answer.text)
                if op in model_ops:  # ... which is 404, before the scope: not even a 403 says the model is there
                    assert refused.json() == {"detail": f"no model {outside.name!r}"}, (level, op, refused.text)
                elif RANK[level] >= RANK["write"] or method == "get":
                    assert refused.json() == {"detail": f"no job {outside.job!r}"}, (level, op, refused.text)
        # Nothing of the model outside the scope changed: a plain key still finds it as it was.
        assert http.get(f"/v1/models/{outside.name}").json()["drift_alpha"] != 0.02
        assert http.get(f"/v1/jobs/{outside.job}").json()["state"] == "queued"
        assert [h["id"] for h in http.get(f"/v1/models/{outside.name}/webhooks").json()] == [outside.hook]
        assert "candidate" in [a["alias"] for a in http.get(f"/v1/models/{outside.name}/aliases").json()]
        assert http.get(f"/v1/models/{outside.name}/shadow").status_code == 404
        # The deletions above met the job the write level queued (409 for both twins); with its jobs
        # cancelled, the scoped admin key deletes its own model as the plain one does the twin.
        for model, token in ((own, scoped["admin"]), (twin, plain["admin"])):
            queued = http.get("/v1/jobs", params={"model": model.name, "state": "queued"}, headers=bearer(token))
            assert queued.status_code == 200 and queued.json(), queued.text
            for job in queued.json():
                assert http.post(f"/v1/jobs/{job['id']}/cancel", headers=bearer(token)).status_code == 202
            assert http.delete(f"/v1/models/{model.name}", headers=bearer(token)).status_code == 204
        assert http.get(f"/v1/models/{outside.name}").status_code == 200


def test_lists_show_only_the_models_in_scope(scoped_api) -> None:
    service, admin = scoped_api
    tag = unique("l")
    token = http_key(service, admin, "read", models=[f"{tag}-a"], prefix=f"{tag}-team-")
    with service.client() as http:
        http.headers.update(bearer(admin))
        dataset = http.post("/v1/datasets", files={"file": ("d.npz", labelled_data(2))}).json()["id"]
        twins = {name: Twin(http, name, dataset) for name in (f"{tag}-a", f"{tag}-team-b", f"{tag}-c", f"{tag}-ab")}
        every = {m["name"] for m in http.get("/v1/models").json()}
        assert set(twins) <= every
        seen = {m["name"] for m in http.get("/v1/models", headers=bearer(token)).json()}
        assert seen == {f"{tag}-a", f"{tag}-team-b"}  # not -ab: a name in the list is matched whole
        jobs = http.get("/v1/jobs", params={"limit": 1000}, headers=bearer(token)).json()
        assert {j["model"] for j in jobs} == seen
        assert {j["id"] for j in jobs} == {twins[name].job for name in seen}
        own = http.get("/v1/jobs", params={"model": f"{tag}-team-b"}, headers=bearer(token)).json()
        assert [j["id"] for j in own] == [twins[f"{tag}-team-b"].job]
        for name in (f"{tag}-c", f"{tag}-nothing"):
            refused = http.get("/v1/jobs", params={"model": name}, headers=bearer(token))
            assert (refused.status_code, refused.json()["detail"]) == (404, f"no model {name!r}")
        # With a limit, the newest jobs of the models in scope (not the newest jobs, then filtered).
        newest = http.get("/v1/jobs", params={"limit": 1}, headers=bearer(token)).json()
        assert [j["id"] for j in newest] == [twins[f"{tag}-team-b"].job]


def test_creating_a_model_outside_the_scope_is_403_even_when_it_exists(scoped_api) -> None:
    service, admin = scoped_api
    tag = unique("c")
    token = http_key(service, admin, "write", models=[f"{tag}-named"], prefix=f"{tag}-team-")
    with service.client() as http:
        assert http.post("/v1/models", json=mlp_payload(f"{tag}-taken"), headers=bearer(admin)).status_code == 201
        for name in (f"{tag}-other", f"{tag}-taken"):
            refused = http.post("/v1/models", json=mlp_payload(name), headers=bearer(token))
            assert refused.status_code == 403, refused.text
            assert f"cannot create a model named {name!r}" in refused.json()["detail"]
            assert f"names starting with '{tag}-team-'" in refused.json()["detail"]
        for name in (f"{tag}-named", f"{tag}-team-x"):
            assert http.post("/v1/models", json=mlp_payload(name), headers=bearer(token)).status_code == 201
        # Taken within the scope: the usual 409.
        assert http.post("/v1/models", json=mlp_payload(f"{tag}-named"), headers=bearer(token)).status_code == 409
        # A read key scoped to models still needs write to create one.
        reader = http_key(service, admin, "read", prefix=f"{tag}-team-")
        assert http.post("/v1/models", json=mlp_payload(f"{tag}-team-y"), headers=bearer(reader)).status_code == 403


def test_datasets_are_shared_but_not_listed_to_a_scoped_key(scoped_api) -> None:
    service, admin = scoped_api
    tag = unique("d")
    writer = http_key(service, admin, "write", prefix=f"{tag}-")
    with service.client() as http:
        listed = http.get("/v1/datasets", headers=bearer(writer))
        assert listed.status_code == 403 and "listing datasets needs a key that reaches every model" in listed.text
        assert http.get("/v1/datasets", headers=bearer(admin)).status_code == 200
        assert "403" in http.get("/openapi.json").json()["paths"]["/v1/datasets"]["get"]["responses"]
        made = http.post("/v1/datasets", files={"file": ("d.npz", labelled_data(3))}, headers=bearer(writer))
        assert made.status_code == 201, made.text
        dataset = made.json()["id"]
        assert http.get(f"/v1/datasets/{dataset}", headers=bearer(admin)).status_code == 200
        by_admin = http.post("/v1/datasets", files={"file": ("d.npz", labelled_data(4))}, headers=bearer(admin))
        assert http.get(f"/v1/datasets/{by_admin.json()['id']}", headers=bearer(writer)).status_code == 200
        assert http.delete(f"/v1/datasets/{dataset}", headers=bearer(writer)).status_code == 204


def test_keys_and_metrics_need_a_key_that_reaches_every_model(scoped_api) -> None:
    service, admin = scoped_api
    tag = unique("k")
    scoped_admin = http_key(service, admin, "admin", name=f"{tag}-admin", prefix=f"{tag}-")
    with service.client() as http:
        for method, path, body in (("get", "/v1/keys", None), ("post", "/v1/keys", {"scope": "admin"}),
                                   ("delete", "/v1/keys/1", None)):
            refused = http.request(method, path, json=body, headers=bearer(scoped_admin))
            assert refused.status_code == 403, (method, path, refused.text)
            assert "managing keys needs a key that reaches every model" in refused.json()["detail"]
            assert f"names starting with '{tag}-'" in refused.json()["detail"]
        assert http.get("/metrics", headers=bearer(scoped_admin)).status_code == 403
        assert http.get("/metrics", headers=bearer(admin)).status_code == 200
        # Its own model it may delete (admin scope, in scope).
        assert http.post("/v1/models", json=mlp_payload(f"{tag}-x"), headers=bearer(scoped_admin)).status_code == 201
        assert http.delete(f"/v1/models/{tag}-x", headers=bearer(scoped_admin)).status_code == 204


def test_keys_carry_their_scope_over_http_the_cli_and_the_client(scoped_api) -> None:
    from app.client import Client, Forbidden, NotFound

    service, admin = scoped_api
    tag = unique("s")
    with Client(service.url, api_key=admin) as client:
        made = client.create_key("read", f"{tag}-http", models=[f"{tag}-b", f"{tag}-a", f"{tag}-a"],
                                 model_prefix=f"{tag}-t-")
        assert (made["models"], made["model_prefix"]) == ([f"{tag}-a", f"{tag}-b"], f"{tag}-t-")
        plain = client.create_key("read", f"{tag}-plain")
        assert (plain["models"], plain["model_prefix"]) == (None, None)
        listed = {k["name"]: k for k in client.list_keys()}
        assert (listed[f"{tag}-http"]["models"], listed[f"{tag}-http"]["model_prefix"]) == (
            [f"{tag}-a", f"{tag}-b"], f"{tag}-t-")
        assert "key" not in listed[f"{tag}-http"]
        assert client.revoke_key(plain["id"])["revoked_at"] is not None
        client.create_model(f"{tag}-z", mlp_payload("x")["architecture"])
        with Client(service.url, api_key=made["key"]) as scoped:
            with pytest.raises(NotFound):
                scoped.get_model(f"{tag}-z")
            with pytest.raises(Forbidden):
                scoped.list_keys()
        with httpx.Client(base_url=service.url, headers=bearer(admin)) as http:
            for bad in ({"models": []}, {"models": ["Bad Name"]}, {"model_prefix": ""}, {"model_prefix": "-x"},
                        {"models": "a"}):
                refused = http.post("/v1/keys", json={"scope": "read", **bad})
                assert refused.status_code == 422, (bad, refused.text)
    created = run_cli(service.var_dir, "keys", "create", "--scope", "write", "--name", f"{tag}-cli",
                      "--models", f"{tag}-a, {tag}-b", "--model-prefix", f"{tag}-t-")
    assert created.returncode == 0, created.stderr
    assert f"models {tag}-a, {tag}-b and names starting with '{tag}-t-'" in created.stderr
    lines = run_cli(service.var_dir, "keys", "list").stdout.splitlines()
    row = next(line.split("\t") for line in lines if f"\t{tag}-cli\t" in line)
    assert row[2] == "write" and row[-1] == f"models {tag}-a, {tag}-b and names starting with '{tag}-t-'"
    row = next(line.split("\t") for line in lines if f"\t{tag}-plain\t" in line)
    assert row[5].startswith("revoked") and row[-1] == "every model"
    for bad in (("--models", ","), ("--models", "Bad Name"), ("--model-prefix", "")):
        refused = run_cli(service.var_dir, "keys", "create", "--scope", "read", *bad)
        assert refused.returncode != 0 and not refused.stdout.startswith("ll_"), (bad, refused.stdout)


def test_a_scoped_key_learns_and_predicts_with_a_worker(secured: Service, make_key: Callable[..., str]) -> None:
    tag = unique("w")
    writer = make_key("write", None, "--model-prefix", f"{tag}-")
    other = make_key("write", None, "--models", f"{tag}-x")
    rng = np.random.default_rng(5)
    x, y = rng.random((40, 64), dtype=np.float32), rng.integers(0, 2, 40)
    with secured.client() as http:
        http.headers.update(bearer(writer))
        dataset = http.post("/v1/datasets", files={"file": ("d.npz", npz_bytes(x=x, y=y))}).json()["id"]
        name = f"{tag}-model"
        assert http.post("/v1/models", json=mlp_payload(name, promotion={"policy": "auto"})).status_code == 201
        job = http.post(f"/v1/models/{name}/tasks", json={"task": "t", "train": {"dataset": dataset}, "epochs": 1})
        assert job.status_code == 202, job.text
        done = wait_for(lambda: http.get(f"/v1/jobs/{job.json()['id']}").json()["state"] in
                        ("succeeded", "failed"), deadline_s=120, what="the job")
        assert done and http.get(f"/v1/jobs/{job.json()['id']}").json()["state"] == "succeeded"
        answer = http.post(f"/v1/models/{name}/predict", json={"task": "t", "inputs": x[:2].tolist()})
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
        # The same prediction from another team's key: 404, from the middleware, before the body is read.
        refused = http.post(f"/v1/models/{name}/predict", json={"task": "t", "inputs": x[:2].tolist()},
                            headers=bearer(other))
        assert (refused.status_code, refused.json()["detail"]) == (404, f"no model {name!r}")
        assert http.get(f"/v1/jobs/{job.json()['id']}", headers=bearer(other)).status_code == 404
