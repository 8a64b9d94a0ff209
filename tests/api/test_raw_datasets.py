"""Raw datasets over HTTP: text and image uploads, class names, every refusal writing nothing, migration 0004."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.engine import make_engine
from app.db.migrate import alembic_config
from app.db.tables import Dataset
from app.settings import Settings
from tests.unit.test_raw_parsing import (
    corrupt_png,
    image_bytes,
    npz_claiming,
    png_claiming,
    tar_of,
    zeros_bomb,
    zip_of,
)


def _blobs(service) -> set[str]:
    return {path.name for path in (service.var_dir / "blobs").glob("??/*") if len(path.name) == 64}


def test_jsonl_with_class_names(api) -> None:
    content = (b'{"text": "great", "label": "pos"}\n{"text": "awful", "label": "neg"}\n'
               b'{"text": "fine", "label": "pos"}\n')
    dataset = api.upload(content, "reviews.jsonl")
    assert dataset["kind"] == "text" and dataset["format"] == "jsonl" and dataset["n"] == 3
    assert dataset["classes"] == ["neg", "pos"] and dataset["has_labels"] is True and dataset["max_label"] == 1
    assert dataset["input_shape"] == []
    assert api.get(f"/v1/datasets/{dataset['id']}") == dataset


def test_text_csv_with_integer_labels(api) -> None:
    dataset = api.upload(b'text,label\n"hello, you",1\nbye,0\n', "greetings.csv")
    assert dataset["kind"] == "text" and dataset["n"] == 2 and dataset["classes"] is None and dataset["max_label"] == 1


def test_numeric_csv_is_still_an_array_dataset(api) -> None:
    dataset = api.upload(b"a,b,label\n1,2,0\n3,4,1\n", "rows.csv")
    assert dataset["kind"] == "array" and dataset["classes"] is None and dataset["input_shape"] == [2]


def test_image_folder_zip(api) -> None:
    content = zip_of({"pets/cat/a.png": image_bytes(1), "pets/cat/b.png": image_bytes(2),
                      "pets/dog/c.jpg": image_bytes(3, fmt="JPEG"), "__MACOSX/pets/._a.png": b"junk"})
    dataset = api.upload(content, "pets.zip")
    assert dataset["kind"] == "image" and dataset["format"] == "zip" and dataset["n"] == 3
    assert dataset["classes"] == ["cat", "dog"] and dataset["max_label"] == 1 and dataset["bytes"] == len(content)


def test_tar_with_labels_csv(api) -> None:
    content = tar_of({"labels.csv": b"file,label\nx.png,bird\ny.png,cat\nz.jpg,bird\n", "x.png": image_bytes(4),
                      "y.png": image_bytes(5), "z.jpg": image_bytes(6, fmt="JPEG")}, "w:gz")
    dataset = api.upload(content, "animals.tar.gz")
    assert dataset["kind"] == "image" and dataset["format"] == "tar.gz" and dataset["classes"] == ["bird", "cat"]


def test_unlabeled_image_zip(api) -> None:
    dataset = api.upload(zip_of({"1.png": image_bytes(7), "2.png": image_bytes(8)}), "photos.zip")
    assert dataset["kind"] == "image" and dataset["has_labels"] is False and dataset["classes"] is None


REFUSALS = {
    "corrupt png": (zip_of({"cat/broken.png": corrupt_png()}), "a.zip", 422, "cat/broken.png is not a readable"),
    "zip without images": (zip_of({"readme.md": b"hello"}), "a.zip", 422, "no PNG or JPEG images"),
    "text field missing": (b'{"text": "a"}\n{"body": "b"}\n', "a.jsonl", 422, "no 'text' field"),
    "non-string text": (b'{"text": ["a"]}\n', "a.jsonl", 422, "must be a string"),
    "image over the pixel limit": (zip_of({"cat/huge.png": png_claiming(30_000, 30_000)}), "a.zip", 413,
                                   "LIFELONG_MAX_IMAGE_PIXELS"),
    "zip bomb": (zeros_bomb(), "a.zip", 413, "compression ratio"),
    "npz bomb": (npz_claiming((1_000_000, 1000)), "a.npz", 413, "LIFELONG_MAX_UNPACKED_BYTES"),
    "too long text": (b'{"text": "' + b"a" * 10_001 + b'"}\n', "a.jsonl", 413, "LIFELONG_MAX_TEXT_CHARS"),
    "path traversal": (zip_of({"../x.png": image_bytes()}), "a.zip", 422, "path traversal"),
    "nested archive": (zip_of({"cat/a.png": image_bytes(), "inner.zip": b"PK"}), "a.zip", 422, "nested"),
    "labels.csv names a missing file": (zip_of({"labels.csv": b"file,label\nghost.png,x\n"}), "a.zip", 422,
                                        "no PNG or JPEG images"),
    # An unknown extension is refused by name, with every accepted one; never read as something else.
    "unknown extension": (b"hello", "notes.txt", 422, "unsupported file type .txt; send .npz, .csv, .jsonl,"
                          " .zip or .tar (.tar.gz and .tgz too)"),
    "a .txt that would parse as a csv": (b"text\n", "sentences.txt", 422, "unsupported file type .txt"),
    "no extension": (b"text\n", "sentences", 422, "the file name has no extension, so it was read as a .csv"),
    "jsonl with a record left unlabelled": (b'{"text": "a", "label": "x"}\n\n{"text": "b"}\n', "a.jsonl", 422,
                                            "(jsonl line 3 has none)"),
    "text csv line after a blank one": (b"text,label\na,x\n\nb,\n", "a.csv", 422,
                                        "csv line 4 has an empty 'label'"),
    "labels.csv line after a blank one": (zip_of({"labels.csv": b"file,label\na.png,x\n\nb.png\n",
                                                  "a.png": image_bytes(), "b.png": image_bytes(2)}), "a.zip", 422,
                                          "labels.csv line 4 has 1 columns"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_say_why_and_write_nothing(api, service, case: str) -> None:
    content, filename, status, reason = REFUSALS[case]
    before, blobs = api.get("/v1/datasets"), _blobs(service)
    response = api.http.post("/v1/datasets", files={"file": (filename, content)})
    assert response.status_code == status, response.text
    assert reason in response.json()["detail"]
    assert api.get("/v1/datasets") == before
    assert _blobs(service) == blobs


def test_labels_csv_naming_a_missing_image_is_refused(api) -> None:
    content = zip_of({"labels.csv": b"file,label\na.png,x\nghost.png,y\n", "a.png": image_bytes()})
    response = api.http.post("/v1/datasets", files={"file": ("a.zip", content)})
    assert response.status_code == 422 and "ghost.png" in response.json()["detail"]


def test_migration_0004_keeps_existing_array_datasets(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'old.sqlite3'}")
    config = alembic_config(settings)
    command.upgrade(config, "0003")
    with sqlite3.connect(tmp_path / "old.sqlite3") as connection:
        connection.execute(
            "INSERT INTO datasets (id, sha256, blob, format, n, input_shape, has_labels, max_label, bytes, created_at)"
            " VALUES ('abc', ?, ?, 'npz', 3, '[4]', 1, 2, 100, '2026-01-01 00:00:00')", ("a" * 64, "b" * 64))
    command.upgrade(config, "head")
    engine = make_engine(settings)
    try:
        with Session(engine) as session:
            dataset = session.scalars(select(Dataset)).one()
            assert (dataset.kind, dataset.classes, dataset.input_shape, dataset.max_label) == ("array", None, [4], 2)
    finally:
        engine.dispose()
    command.downgrade(config, "0003")
    command.upgrade(config, "head")
