"""Datasets over HTTP: .npz and .csv uploads, content addressing, and every malformed file refused."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest


def test_npz_upload_and_same_bytes_same_dataset(api) -> None:
    content = api.npz_bytes(x=np.random.default_rng(1).random((7, 64), dtype=np.float32), y=np.arange(7) % 3)
    first = api.upload(content, "a.npz")
    assert first["n"] == 7 and first["input_shape"] == [64] and first["has_labels"] is True
    assert first["bytes"] == len(content) and len(first["sha256"]) == 64 and first["max_label"] == 2
    again = api.upload(content, "renamed.npz")
    assert again["id"] == first["id"]
    assert api.get(f"/v1/datasets/{first['id']}") == first


def test_npz_without_labels(api) -> None:
    dataset = api.upload(api.npz_bytes(x=np.zeros((3, 1, 8, 8), dtype=np.float64)), "images.npz")
    assert dataset["input_shape"] == [1, 8, 8] and dataset["has_labels"] is False


def test_csv_with_label_column(api) -> None:
    dataset = api.upload(b"a,b,label,c\n1,2,0,3\n4,5,1,6\n7,8,1,9\n", "rows.csv")
    assert dataset["n"] == 3 and dataset["input_shape"] == [3] and dataset["max_label"] == 1


def test_csv_without_header_has_no_labels(api) -> None:
    dataset = api.upload(b"0.5,1\n2,3.25\n", "plain.csv")
    assert dataset["n"] == 2 and dataset["input_shape"] == [2] and dataset["has_labels"] is False


def _zip_with_pickled_array() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([{"a": 1}, None], dtype=object))
    return buffer.getvalue()


def _truncated_npz() -> bytes:
    content = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, x=content)
    return buffer.getvalue()[:100]


def _zip_without_npy() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return buffer.getvalue()


BAD_FILES = {
    "empty file": (b"", "a.npz", "empty"),
    "not a zip": (b"this is not an npz", "a.npz", "npz"),
    "truncated": (_truncated_npz(), "a.npz", "npz"),
    "pickled objects": (_zip_with_pickled_array(), "a.npz", "pickle"),
    "no x": (_zip_without_npy(), "a.npz", "'x'"),
    "nan": (None, "a.npz", "non-finite"),
    "1-d x": (None, "a.npz", "shape"),
    "labels wrong length": (None, "a.npz", "one integer per input row"),
    "float labels": (None, "a.npz", "integers"),
    "negative labels": (None, "a.npz", "≥ 0"),
    "zero rows": (None, "a.npz", "empty"),
    "ragged csv": (b"1,2,3\n4,5\n", "a.csv", "columns"),
    "text in csv": (b"1,2\n3,abc\n", "a.csv", "not a number"),
    "csv header only": (b"a,b,label\n", "a.csv", "no data rows"),
    "csv fractional label": (b"a,label\n1,0.5\n", "a.csv", "must hold whole numbers"),
    "binary csv": (b"\xff\xfe\x00garbage", "a.csv", "UTF-8"),
    # A CSV refusal names the line of the file (1-based, the header is line 1), counting blank lines and
    # the line breaks inside quoted cells, as an editor does.
    "csv line after a blank one": (b"a,b\n1,2\n\n3\n", "a.csv", "csv line 4 has 1 columns, expected 2"),
    "csv line without a header": (b"1,2\n\n3,x\n", "a.csv", "csv line 3 holds a value that is not a number"),
    "csv line after a quoted line break": (b'a,b\n"1\n",2\n4,x\n', "a.csv", "csv line 4 holds a value"),
    "csv line of a nan": (b"a,b\n1,2\n\n3,nan\n", "a.csv", "csv line 4 holds a non-finite value"),
    "csv line of a value beyond float32": (b"a,b\n1,1e39\n", "a.csv", "csv line 2 holds a non-finite value"),
    "csv line of a fractional label": (b"a,label\n1,0\n\n1,0.5\n", "a.csv", "csv line 4: the column 'label'"),
    "csv line of a negative label": (b"a,label\n1,0\n2,-1\n", "a.csv", "csv line 3: labels must be ≥ 0"),
}
ARRAYS = {
    "nan": {"x": np.array([[1.0, np.nan]])},
    "1-d x": {"x": np.array([1.0, 2.0])},
    "labels wrong length": {"x": np.zeros((3, 2)), "y": np.array([0, 1])},
    "float labels": {"x": np.zeros((2, 2)), "y": np.array([0.5, 1.0])},
    "negative labels": {"x": np.zeros((2, 2)), "y": np.array([0, -1])},
    "zero rows": {"x": np.zeros((0, 2))},
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_uploads_are_422_with_a_reason_and_store_nothing(api, case: str) -> None:
    content, filename, reason = BAD_FILES[case]
    if content is None:
        content = api.npz_bytes(**ARRAYS[case])
    before = len(api.get("/v1/datasets"))
    response = api.http.post("/v1/datasets", files={"file": (filename, content)})
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"]
    assert len(api.get("/v1/datasets")) == before


def test_upload_without_file_field_is_422(api) -> None:
    response = api.http.post("/v1/datasets", files={"other": (None, "x")})  # multipart, no field `file`
    assert response.status_code == 422 and response.json()["detail"]


def test_upload_over_the_size_limit_is_413(api) -> None:
    response = api.http.post("/v1/datasets", files={"file": ("big.csv", b"1," * (3 << 20))})
    assert response.status_code == 413 and "limit" in response.json()["detail"]


def test_unknown_dataset_is_404(api) -> None:
    response = api.http.get("/v1/datasets/0123456789abcdef01234567")
    assert response.status_code == 404 and response.json()["detail"]
