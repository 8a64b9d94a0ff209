"""Inputs that used to make a 500 (reproductions from the outside test, issue 13 item 5): each is now a
422 with the reason, and nothing is written."""

from __future__ import annotations

import io

import numpy as np


def _huge_npy_header() -> bytes:
    """A .npy whose header declares 10¹² × 64 float64 values, followed by 16 bytes."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 64)})
    return buffer.getvalue() + b"\0" * 16


def test_non_finite_numbers_are_refused_without_echoing_them(api) -> None:
    model = api.create_model("nan")
    for field, value in (("lr", "NaN"), ("lambda", "Infinity"), ("batch_size", "NaN")):
        body = '{"task": "t", "train": {"inputs": [[1]], "labels": [0]}, "' + field + '": ' + value + "}"
        response = api.http.post(f"/v1/models/{model}/tasks", content=body,
                                 headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        errors = response.json()["errors"]  # one per type a field may take (lambda: a number or "auto")
        assert errors and all(e["loc"][:2] == ["body", field] and "input" not in e for e in errors), errors
    assert api.get("/v1/jobs", model=model) == []


def test_inputs_nested_thousands_deep_are_refused(api) -> None:
    model = api.create_model("deep")
    deep = "[" * 5000 + "]" * 5000
    response = api.http.get(f"/v1/models/{model}/predict", params={"task": "t", "inputs": deep})
    assert response.status_code == 422 and "nested too deeply" in response.json()["detail"]
    response = api.http.post(f"/v1/models/{model}/predict", content='{"task": "t", "inputs": ' + deep + "}",
                             headers={"content-type": "application/json"})
    assert response.status_code == 422 and "recursion" in response.json()["detail"]


def test_an_npy_body_declaring_a_huge_shape_is_refused_before_numpy_allocates(api) -> None:
    model = api.create_model("npyhdr")
    response = api.http.post(f"/v1/models/{model}/predict", params={"task": "t"}, content=_huge_npy_header(),
                             headers={"content-type": "application/x-npy"})
    assert response.status_code == 422, response.text
    assert "declares shape [1000000000000, 64]" in response.json()["detail"]
    truncated = api.npy_bytes(np.ones((4, 64), dtype=np.float32))[:-8]
    response = api.http.post(f"/v1/models/{model}/predict", params={"task": "t"}, content=truncated,
                             headers={"content-type": "application/x-npy"})
    assert response.status_code == 422 and "bytes follow it" in response.json()["detail"]
