"""One error shape, documented: every refusal is `{"detail": "<why>"}` (a 422 for invalid fields adds
`errors` with their locations), the OpenAPI lists each operation's real errors with that body, a body of
the wrong media type is a 415 that names the right one, and request bodies take JSON's types as the
schema states them (issue 13 item 8, issue 14 "Errors")."""

from __future__ import annotations

from typing import Any

import jsonschema
import numpy as np
import pytest


@pytest.fixture(scope="module")
def openapi(api) -> dict[str, Any]:
    return api.get("/openapi.json")


def _validate(openapi: dict[str, Any], body: Any, schema_name: str) -> None:
    resolver = {"components": openapi["components"], "$ref": f"#/components/schemas/{schema_name}"}
    jsonschema.validate(body, resolver)


def test_a_validation_error_has_a_string_detail_and_the_fields_with_their_location(api, openapi) -> None:
    response = api.http.post("/v1/models", json={"name": "Bad Name", "architecture": {"kind": "mlp"}, "seed": -1})
    assert response.status_code == 422
    body = response.json()
    assert isinstance(body["detail"], str) and "body.name" in body["detail"] and "body.seed" in body["detail"]
    assert {tuple(e["loc"]) for e in body["errors"]} == {("body", "name"), ("body", "seed")}
    assert all(isinstance(e["msg"], str) and e["type"] for e in body["errors"])
    _validate(openapi, body, "ErrorOut")


def test_a_query_parameter_and_malformed_json_say_where(api) -> None:
    body = api.http.get("/v1/jobs", params={"limit": 0}).json()
    assert body["errors"][0]["loc"] == ["query", "limit"] and body["detail"].startswith("query.limit: ")
    body = api.http.post("/v1/models", content=b'{"name": ', headers={"content-type": "application/json"}).json()
    assert body["errors"][0]["type"] == "json_invalid" and "JSON decode error: " in body["detail"]


def test_a_prediction_body_is_refused_in_the_same_shape(api) -> None:
    """The prediction route reads its JSON itself, and says so in the same words as FastAPI's routes."""
    model = api.create_model("shape")
    body = api.http.post(f"/v1/models/{model}/predict", json={"inputs": [[0.0] * 64], "task": 7}).json()
    assert body["errors"] == [{"loc": ["body", "task"], "msg": "Input should be a valid string", "type": "string_type"}]


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v1/models/no-such-model", 404),
    ("POST", "/v1/jobs/nope/cancel", 404),
    ("GET", "/v1/nothing-here", 404),
    ("PATCH", "/v1/datasets", 405),
])
def test_other_refusals_have_the_same_shape(api, openapi, method: str, path: str, status: int) -> None:
    response = api.http.request(method, path)
    assert response.status_code == status
    assert set(response.json()) == {"detail"} and isinstance(response.json()["detail"], str)
    _validate(openapi, response.json(), "ErrorOut")


def test_a_405_allows_every_method_of_the_path(api) -> None:
    """Starlette named only the first matching route's methods: `Allow: POST` for /v1/models."""
    for path, methods in (("/v1/models", "GET, POST"), ("/v1/datasets", "GET, POST"), ("/v1/keys", "GET, POST")):
        response = api.http.request("PUT", path)
        assert response.status_code == 405 and response.headers["allow"] == methods


def test_the_openapi_lists_each_operations_errors_with_the_one_shape(openapi) -> None:
    components = openapi["components"]["schemas"]
    assert "HTTPValidationError" not in components and set(components["ErrorOut"]["required"]) == {"detail"}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            statuses = {s for s in operation["responses"] if s[0] in "45"}
            for status in statuses - ({"503"} if path == "/readyz" else set()):
                assert operation["responses"][status]["content"] == error, (method, path, status)
            if path.startswith("/v1/"):
                assert "401" in statuses, (method, path)
            if "requestBody" in operation:
                assert {"408", "413", "415", "422"} <= statuses, (method, path)
            if "{" in path:
                assert "404" in statuses, (method, path)
    tasks = openapi["paths"]["/v1/models/{name}/tasks"]["post"]["responses"]
    assert {"400", "401", "403", "404", "409", "413", "415", "422", "429"} <= set(tasks)
    assert "403" not in openapi["paths"]["/v1/models/{name}"]["get"]["responses"]  # any key may read
    assert "409" in openapi["paths"]["/v1/models"]["post"]["responses"]
    assert "503" in openapi["paths"]["/readyz"]["get"]["responses"]


def test_data_references_and_predictions_are_a_one_of(openapi) -> None:
    components = openapi["components"]["schemas"]
    data = components["DataRef"]["oneOf"]
    assert [branch["required"] for branch in data] == [["dataset"], ["inputs"], ["texts"]]
    assert data[0]["properties"]["labels"] == {"type": "null"}  # a dataset carries its own labels
    predict = openapi["paths"]["/v1/models/{name}/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert [branch["required"] for branch in predict["schema"]["oneOf"]] == [["inputs"], ["texts"]]  # task: optional
    for name in ("TaskRequest", "ImportanceRequest"):
        refs = str(components[name]["properties"])
        assert "#/components/schemas/DataRef" in refs


def test_downloads_are_documented_as_binary_safetensors(openapi) -> None:
    for download in ("checkpoint", "importance"):
        ok = openapi["paths"][f"/v1/models/{{name}}/versions/{{number}}/{download}"]["get"]["responses"]["200"]
        assert ok["content"] == {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


@pytest.mark.parametrize(("content_type", "content"), [
    ("text/plain", b'{"name": "as-text", "architecture": {"kind": "mlp", "input_shape": [4]}}'),
    ("application/x-www-form-urlencoded", b"name=as-form&architecture=mlp"),
    (None, b'{"name": "no-type", "architecture": {"kind": "mlp", "input_shape": [4]}}'),
])
def test_json_sent_as_another_type_is_415_naming_json(api, content_type: str | None, content: bytes) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = api.http.post("/v1/models", content=content, headers=headers)
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["detail"] and (content_type or "no Content-Type") in \
        response.json()["detail"]
    assert api.http.get("/v1/models/as-text").status_code == 404


def test_bodies_of_other_types_keep_working_where_they_are_read(api) -> None:
    """Uploads (multipart), .npy and image predictions; JSON to an upload or text to a prediction is 415."""
    rng = np.random.default_rng(0)
    dataset = api.upload(api.npz_bytes(x=rng.random((4, 64), dtype=np.float32)))
    assert dataset["n"] == 4
    refused = api.http.post("/v1/datasets", json={"file": "x"})
    assert refused.status_code == 415 and "multipart/form-data" in refused.json()["detail"]
    model = api.create_model("types")
    body = api.npy_bytes(rng.random((2, 64), dtype=np.float32))
    response = api.http.post(f"/v1/models/{model}/predict", params={"task": "t"}, content=body,
                             headers={"content-type": "application/x-npy"})
    assert response.status_code == 404 and "t" in response.json()["detail"]  # got past the type: no task t
    refused = api.http.post(f"/v1/models/{model}/predict", content=b"1,2", headers={"content-type": "text/csv"})
    assert refused.status_code == 415
    assert all(t in refused.json()["detail"] for t in ("application/json", "application/x-npy", "image/png"))
    assert api.http.post("/v1/jobs/nope/cancel").status_code == 404  # no body, no type needed


@pytest.mark.parametrize(("path", "body"), [
    ("head", {"version": False}),
    ("head", {"version": "0"}),
    ("predict", {"task": "t", "inputs": [[0.0] * 64], "probabilities": 1}),
    ("predict", {"task": "t", "inputs": [[0.0] * 64], "version": True}),
    ("tasks", {"task": "t", "train": {"inputs": [[0.0] * 64], "labels": [True]}}),
])
def test_request_bodies_take_json_types_as_the_schema_states_them(api, path: str, body: dict) -> None:
    """pydantic's lax mode took false for 0, "0" for 0 and 1 for true: values the OpenAPI calls invalid."""
    model = api.create_model("strict")
    method = "PUT" if path == "head" else "POST"
    response = api.http.request(method, f"/v1/models/{model}/{path}", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"], response.text


def test_an_integer_written_with_a_fraction_of_zero_is_an_integer(api) -> None:
    """JSON Schema calls 0.0 an integer, so the API takes it as 0."""
    model = api.create_model("integral")
    response = api.http.put(f"/v1/models/{model}/head", json={"version": 0.0})
    assert response.status_code == 200, response.text
    assert api.http.put(f"/v1/models/{model}/head", json={"version": 0.5}).status_code == 422


def test_a_request_with_many_bad_fields_gets_the_first_twenty(api) -> None:
    model = api.create_model("many")
    body = {"task": "t", "train": {"inputs": [[0.0] * 64] * 100, "labels": [True] * 100}}
    response = api.http.post(f"/v1/models/{model}/tasks", json=body)
    assert response.status_code == 422
    assert len(response.json()["errors"]) == 20 and response.json()["detail"].endswith("; and 180 more")


def test_bounds_on_optional_integers_are_json_schema_bounds(openapi) -> None:
    """pydantic writes a bound on `Integer | None` as `ge`/`le`, which JSON Schema ignores: a client that
    trusts the OpenAPI would send -1 and get a 422 (schemathesis found it on `evaluate`'s version)."""
    def keys(node: Any) -> set[str]:
        if isinstance(node, dict):
            return {k for k in node if k in ("ge", "le", "gt", "lt") and not isinstance(node[k], dict)} | {
                k for v in node.values() for k in keys(v)}
        return {k for v in node for k in keys(v)} if isinstance(node, list) else set()

    assert keys(openapi) == set()
    schemas = openapi["components"]["schemas"]
    version = schemas["EvaluateRequest"]["properties"]["version"]["anyOf"][0]
    assert version["type"] == "integer" and version["minimum"] == 0 and version["maximum"] > 0
    assert schemas["TaskRequest"]["properties"]["num_classes"]["anyOf"][0]["minimum"] == 2
