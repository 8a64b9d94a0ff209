"""Datasets as stored things: upload, look up, and resolve the data a request refers to.

A dataset's id is derived from the sha256 of its bytes, so the same bytes always give the same
dataset (uploading twice stores once). Data-taking requests are handled in two steps, `prepare_data`
(check, write nothing) then `save_data`, so that a request refused for any reason writes nothing.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.datasets.parsing import Arrays, parse_inline, parse_upload
from app.datasets.schemas import DataRef
from app.db.tables import Dataset
from app.errors import Invalid, NotFound, TooLarge
from app.mas.tensors_io import tensors_from_bytes, tensors_to_bytes
from app.store import BlobStore

_ID_LENGTH = 24  # hex digits of the sha256: 96 bits, collision-free for any realistic number of uploads


def upload_dataset(session: Session, store: BlobStore, data: bytes, filename: str | None, max_bytes: int) -> Dataset:
    if len(data) > max_bytes:
        raise TooLarge(f"the file has {len(data)} bytes, more than the limit of {max_bytes}")
    sha256 = hashlib.sha256(data).hexdigest()
    existing = session.scalar(select(Dataset).where(Dataset.sha256 == sha256))
    if existing is not None:
        return existing
    session.rollback()  # parsing a large file can take a while: hold no database lock meanwhile
    arrays, file_format = parse_upload(data, filename)
    return _insert(session, store, arrays, sha256=sha256, file_format=file_format, size=len(data))


def get_dataset(session: Session, dataset_id: str) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id!r}")
    return dataset


def list_datasets(session: Session) -> list[Dataset]:
    return list(session.scalars(select(Dataset).order_by(Dataset.created_at.desc())))


@dataclass(frozen=True)
class PreparedData:
    """Data a request refers to, checked but not yet stored: an existing dataset, or inline arrays."""

    purpose: str
    dataset: Dataset | None = None
    arrays: Arrays | None = None

    @property
    def input_shape(self) -> list[int]:
        return list(self.dataset.input_shape) if self.dataset is not None else list(self.arrays.x.shape[1:])

    @property
    def n(self) -> int:
        return self.dataset.n if self.dataset is not None else int(self.arrays.x.shape[0])

    @property
    def max_label(self) -> int | None:
        return self.dataset.max_label if self.dataset is not None else self.arrays.max_label


def prepare_data(session: Session, ref: DataRef, purpose: str) -> PreparedData:
    if ref.dataset is not None:
        dataset = session.get(Dataset, ref.dataset)
        if dataset is None:
            raise NotFound(f"{purpose}: no dataset {ref.dataset!r}")
        return PreparedData(purpose, dataset=dataset)
    try:
        return PreparedData(purpose, arrays=parse_inline(ref.inputs or [], ref.labels))
    except Invalid as error:
        raise Invalid(f"{purpose}: {error.detail}") from error


def check_fits(prepared: PreparedData, input_shape: list[int], *, labels: bool, num_classes: int | None = None) -> None:
    """422 unless the data fits the model's input shape and, where needed, the task's classes."""
    check_input_shape(prepared.input_shape, input_shape, prepared.purpose)
    if not labels:
        return
    if prepared.max_label is None:
        raise Invalid(f"{prepared.purpose}: labels are needed and this data has none")
    if num_classes is not None and prepared.max_label >= num_classes:
        raise Invalid(f"{prepared.purpose}: label {prepared.max_label} is out of range for {num_classes} classes")


def check_input_shape(shape: list[int], input_shape: list[int], purpose: str) -> None:
    if list(shape) == list(input_shape):
        return
    # Flat rows of the right size are reshaped (a CSV feeding a CNN), but nothing else is guessed.
    if len(shape) == 1 and shape[0] == math.prod(input_shape):
        return
    raise Invalid(
        f"{purpose}: rows have shape {list(shape)}, the model takes {list(input_shape)}"
        f" (or flat rows of {math.prod(input_shape)} values)"
    )


def fit_inputs(x: np.ndarray, input_shape: list[int], purpose: str) -> np.ndarray:
    check_input_shape(list(x.shape[1:]), input_shape, purpose)
    return x.reshape(x.shape[0], *input_shape)


def save_data(session: Session, store: BlobStore, prepared: PreparedData) -> str:
    """The dataset id of prepared data, storing inline arrays (deduplicated by content) if needed."""
    if prepared.dataset is not None:
        return prepared.dataset.id
    encoded = _encode(prepared.arrays)
    sha256 = hashlib.sha256(encoded).hexdigest()
    existing = session.scalar(select(Dataset).where(Dataset.sha256 == sha256))
    if existing is not None:
        return existing.id
    return _insert(session, store, prepared.arrays, sha256=sha256, file_format="inline", size=len(encoded)).id


def load_arrays(store: BlobStore, dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor | None]:
    tensors = tensors_from_bytes(store.get(dataset.blob))
    return tensors["x"], tensors.get("y")


def _encode(arrays: Arrays) -> bytes:
    tensors = {"x": torch.from_numpy(arrays.x)}
    if arrays.y is not None:
        tensors["y"] = torch.from_numpy(arrays.y)
    return tensors_to_bytes(tensors)


def _insert(session: Session, store: BlobStore, arrays: Arrays, *, sha256: str, file_format: str, size: int) -> Dataset:
    dataset = Dataset(
        id=sha256[:_ID_LENGTH], sha256=sha256, blob=store.put(_encode(arrays)), format=file_format,
        n=int(arrays.x.shape[0]), input_shape=list(arrays.x.shape[1:]), has_labels=arrays.y is not None,
        max_label=arrays.max_label, bytes=size,
    )
    try:
        with session.begin_nested():
            session.add(dataset)
    except IntegrityError:
        # The same bytes were uploaded concurrently: theirs is ours.
        return session.scalars(select(Dataset).where(Dataset.sha256 == sha256)).one()
    return dataset
