"""Datasets as stored things: upload, look up, and resolve the data a request refers to.

A dataset's id is derived from the sha256 of its bytes, so the same bytes always give the same
dataset (uploading twice stores once). A dataset is of one `kind`: `array` (rows of floats), `text`
or `image` (raw items a model's own front end turns into tensors); app/datasets/reader.py reads any
of them back in bounded chunks.

Data-taking requests are handled in two steps, `prepare_data` (check, write nothing) then
`save_data`, so that a request refused for any reason writes nothing. A deleted dataset
(app/datasets/deletion.py) is a 404 that says when it was deleted.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.blobs.purge import lock_deletions_of
from app.datasets.deletion import missing_dataset
from app.datasets.images import Images
from app.datasets.parsing import Arrays, Parsed, parse_inline, parse_upload
from app.datasets.schemas import DataRef
from app.datasets.text import Texts, encode_texts, parse_inline_texts
from app.db.tables import Dataset, utcnow
from app.errors import Invalid, TooLarge
from app.limits import UnpackLimits
from app.mas.tensors_io import tensors_to_bytes
from app.store import BlobStore

_ID_LENGTH = 24  # hex digits of the sha256: 96 bits, collision-free for any realistic number of uploads


def upload_dataset(*, session: Session, store: BlobStore, data: bytes, filename: str | None, max_bytes: int,
                   limits: UnpackLimits | None = None, retain_until: datetime | None = None) -> Dataset:
    """The dataset of these bytes, stored if new. `retain_until` (when given) is when the sweeper deletes it,
    set on an existing dataset too: the latest upload that says when decides."""
    if len(data) > max_bytes:
        raise TooLarge(f"the file has {len(data)} bytes, more than the limit of {max_bytes}")
    if retain_until is not None:
        retain_until = check_retain_until(retain_until)
    sha256 = hashlib.sha256(data).hexdigest()
    existing = session.scalar(select(Dataset).where(Dataset.sha256 == sha256))
    if existing is not None:
        if retain_until is not None:
            existing.retain_until = retain_until
        return existing
    session.rollback()  # parsing a large file can take a while: hold no database lock meanwhile
    parsed, file_format = parse_upload(data, filename, limits)
    dataset = _insert(session, store, parsed, _encode(parsed), sha256=sha256, file_format=file_format,
                      size=len(data))
    if retain_until is not None:
        dataset.retain_until = retain_until
    return dataset


def check_retain_until(retain_until: datetime) -> datetime:
    """A moment in the future, in UTC (a time without a zone is taken as UTC); 422 for one already past."""
    if retain_until.tzinfo is None:
        retain_until = retain_until.replace(tzinfo=UTC)
    if retain_until <= utcnow():
        raise Invalid(f"retain_until: {retain_until.isoformat()} is in the past; give a later time, or delete the"
                      " dataset with DELETE /v1/datasets/{id}")
    return retain_until


def get_dataset(*, session: Session, dataset_id: str) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise missing_dataset(session, dataset_id)
    return dataset


def list_datasets(session: Session) -> list[Dataset]:
    return list(session.scalars(select(Dataset).order_by(Dataset.created_at.desc())))


@dataclass(frozen=True)
class PreparedData:
    """Data a request refers to, checked but not yet stored: an existing dataset, inline arrays or texts."""

    purpose: str
    dataset: Dataset | None = None
    arrays: Arrays | None = None
    texts: Texts | None = None

    @property
    def kind(self) -> str:
        if self.dataset is not None:
            return self.dataset.kind
        return "array" if self.arrays is not None else "text"

    @property
    def input_shape(self) -> list[int]:
        if self.dataset is not None:
            return list(self.dataset.input_shape)
        return list(self.arrays.x.shape[1:]) if self.arrays is not None else []

    @property
    def n(self) -> int:
        return self.dataset.n if self.dataset is not None else _inline(self).n

    @property
    def max_label(self) -> int | None:
        return self.dataset.max_label if self.dataset is not None else _inline(self).max_label

    @property
    def classes(self) -> list[str] | None:
        return self.dataset.classes if self.dataset is not None else _inline(self).classes


def _inline(prepared: PreparedData) -> Arrays | Texts:
    return prepared.arrays if prepared.arrays is not None else prepared.texts


def prepare_data(*, session: Session, ref: DataRef, purpose: str, limits: UnpackLimits | None = None) -> PreparedData:
    if ref.dataset is not None:
        # FOR SHARE on PostgreSQL: a deletion of the dataset waits until this request's job is committed,
        # then sees it and refuses (app/datasets/deletion.py).
        dataset = session.get(Dataset, ref.dataset, with_for_update={"read": True})
        if dataset is None:
            raise missing_dataset(session, ref.dataset, purpose)
        return PreparedData(purpose, dataset=dataset)
    try:
        if ref.texts is not None:
            return PreparedData(purpose, texts=parse_inline_texts(ref.texts, ref.labels, limits or UnpackLimits()))
        return PreparedData(purpose, arrays=parse_inline(ref.inputs or [], ref.labels))
    except (Invalid, TooLarge) as error:
        raise type(error)(f"{purpose}: {error.detail}") from error


def check_fits(*, prepared: PreparedData, input_shape: list[int], labels: bool, num_classes: int | None = None,
               kind: str = "array") -> None:
    """422 unless the data is of the `kind` the model takes and fits its input shape (arrays) and, where
    needed, the task's classes."""
    if prepared.kind != kind:
        raise Invalid(f"{prepared.purpose}: this is {prepared.kind} data, and the model takes {kind} data")
    if kind == "array":
        check_input_shape(shape=prepared.input_shape, input_shape=input_shape, purpose=prepared.purpose)
    if not labels:
        return
    if prepared.max_label is None:
        raise Invalid(f"{prepared.purpose}: labels are needed and this data has none")
    if num_classes is not None and prepared.max_label >= num_classes:
        raise Invalid(f"{prepared.purpose}: label {prepared.max_label} is out of range for {num_classes} classes")


def check_input_shape(*, shape: list[int], input_shape: list[int], purpose: str) -> None:
    if list(shape) == list(input_shape):
        return
    # Flat rows of the right size are reshaped (a CSV feeding a CNN), but nothing else is guessed.
    if len(shape) == 1 and shape[0] == math.prod(input_shape):
        return
    raise Invalid(
        f"{purpose}: rows have shape {list(shape)}, the model takes {list(input_shape)}"
        f" (or flat rows of {math.prod(input_shape)} values)"
    )


def fit_inputs(*, x: np.ndarray, input_shape: list[int], purpose: str) -> np.ndarray:
    check_input_shape(shape=list(x.shape[1:]), input_shape=input_shape, purpose=purpose)
    return x.reshape(x.shape[0], *input_shape)


def save_data(*, session: Session, store: BlobStore, prepared: PreparedData) -> str:
    """The dataset id of prepared data, storing inline data (deduplicated by content) if needed."""
    if prepared.dataset is not None:
        return prepared.dataset.id
    parsed = _inline(prepared)
    encoded = _encode(parsed)
    sha256 = hashlib.sha256(encoded).hexdigest()
    existing = session.scalar(select(Dataset).where(Dataset.sha256 == sha256))
    if existing is not None:
        return existing.id
    return _insert(session, store, parsed, encoded, sha256=sha256, file_format="inline", size=len(encoded)).id


def _encode(parsed: Parsed) -> bytes:
    """The blob of parsed data: safetensors for arrays, JSON lines for texts, the re-packed zip for images."""
    if isinstance(parsed, Texts):
        return encode_texts(parsed)
    if isinstance(parsed, Images):
        return parsed.blob
    tensors = {"x": torch.from_numpy(parsed.x)}
    if parsed.y is not None:
        tensors["y"] = torch.from_numpy(parsed.y)
    return tensors_to_bytes(tensors)


def _insert(session: Session, store: BlobStore, parsed: Parsed, encoded: bytes, *, sha256: str, file_format: str,
            size: int) -> Dataset:
    if isinstance(parsed, Arrays):
        kind, n, input_shape = "array", int(parsed.x.shape[0]), list(parsed.x.shape[1:])
    else:
        kind, n, input_shape = ("text" if isinstance(parsed, Texts) else "image"), parsed.n, []
    dataset = Dataset(
        id=sha256[:_ID_LENGTH], sha256=sha256, blob=store.put(encoded), format=file_format, kind=kind,
        n=n, input_shape=input_shape, has_labels=parsed.y is not None, max_label=parsed.max_label,
        classes=parsed.classes, bytes=size,
    )
    try:
        with session.begin_nested():
            session.add(dataset)
    except IntegrityError:
        # The same bytes were uploaded concurrently: theirs is ours.
        return session.scalars(select(Dataset).where(Dataset.sha256 == sha256)).one()
    if lock_deletions_of(session, dataset.blob) and not store.exists(dataset.blob):
        store.put(encoded)  # a purge of a deleted dataset with the same content took it since our put
    return dataset
