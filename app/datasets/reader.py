"""Reading a stored dataset back, of any kind, in chunks: what a worker iterates over to train or measure Ω.

`open_dataset(store, dataset)` gives a reader with the dataset's `kind`, `n`, `classes` and all its
`labels` (int64, small), and `chunks(size)`, which yields the raw items with their labels, `size` at
a time: float32 rows for arrays, `str` for texts, the bytes of each image file (PNG or JPEG) for
images. Turning items into tensors (a tokenizer, image decoding and resizing) is the model's front
end's business, not the dataset's.

Memory is bounded by the chunk, not the dataset, when the store has the blob as a local file
(LocalBlobStore): array rows are sliced from the safetensors file, texts read line by line, images
member by member from the zip. A remote store's blob is fetched whole first.
"""

from __future__ import annotations

import io
import json
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
from safetensors import safe_open

from app.datasets.images import IMAGES_FORMAT, INDEX_MEMBER
from app.datasets.text import read_texts_header
from app.db.tables import Dataset
from app.mas.tensors_io import tensors_from_bytes
from app.store import BlobStore

Chunk = tuple[list[Any], np.ndarray | None]


class DatasetReader(ABC):
    kind: str
    n: int
    classes: list[str] | None
    labels: np.ndarray | None  # int64 [n]; indices into `classes` when there are classes

    @abstractmethod
    def chunks(self, size: int) -> Iterator[Chunk]:
        """The items in order, `size` at a time (the last chunk may be shorter), with their labels."""


def open_dataset(store: BlobStore, dataset: Dataset) -> DatasetReader:
    source = _source(store, dataset.blob)
    classes = list(dataset.classes) if dataset.classes is not None else None
    if dataset.kind == "text":
        return TextReader(source, classes)
    if dataset.kind == "image":
        return ImageReader(source, classes)
    return ArrayReader(source)


class ArrayReader(DatasetReader):
    kind = "array"

    def __init__(self, source: Path | bytes):
        self.source, self.classes = source, None
        if isinstance(source, Path):
            with safe_open(str(source), framework="np") as tensors:
                self.n = int(tensors.get_slice("x").get_shape()[0])
                self.labels = tensors.get_tensor("y").astype(np.int64) if "y" in tensors.keys() else None
        else:
            self._tensors = {k: v.numpy() for k, v in tensors_from_bytes(source).items()}
            self.n = int(self._tensors["x"].shape[0])
            self.labels = self._tensors.get("y")

    def chunks(self, size: int) -> Iterator[Chunk]:
        _check_size(size)
        if not isinstance(self.source, Path):
            for start in range(0, self.n, size):
                yield list(self._tensors["x"][start:start + size]), _slice(self.labels, start, size)
            return
        with safe_open(str(self.source), framework="np") as tensors:
            x = tensors.get_slice("x")
            for start in range(0, self.n, size):
                yield list(x[start:min(start + size, self.n)]), _slice(self.labels, start, size)


class TextReader(DatasetReader):
    kind = "text"

    def __init__(self, source: Path | bytes, classes: list[str] | None):
        self.source, self.classes = source, classes
        with _lines(source) as lines:
            header = read_texts_header(lines)
        self.n = int(header["n"])
        self.labels = np.asarray(header["labels"], dtype=np.int64) if header["labels"] is not None else None

    def chunks(self, size: int) -> Iterator[Chunk]:
        _check_size(size)
        with _lines(self.source) as lines:
            read_texts_header(lines)
            start, texts = 0, []
            for line in lines:
                texts.append(json.loads(line))
                if len(texts) == size:
                    yield texts, _slice(self.labels, start, size)
                    start, texts = start + size, []
            if texts:
                yield texts, _slice(self.labels, start, size)


class ImageReader(DatasetReader):
    kind = "image"

    def __init__(self, source: Path | bytes, classes: list[str] | None):
        self.source = source
        self._archive: zipfile.ZipFile | None = None
        with self._open() as archive:
            index = json.loads(archive.read(INDEX_MEMBER))
        if index.get("format") != IMAGES_FORMAT:
            raise ValueError(f"not a stored image dataset (format {index.get('format')!r})")
        self.n, self.members, self.files = int(index["n"]), index["members"], index["files"]
        self.labels = np.asarray(index["labels"], dtype=np.int64) if index["labels"] is not None else None
        self.classes = classes if classes is not None else index.get("classes")

    def chunks(self, size: int) -> Iterator[Chunk]:
        _check_size(size)
        with self._open() as archive:
            for start in range(0, self.n, size):
                items = [archive.read(member) for member in self.members[start:start + size]]
                yield items, _slice(self.labels, start, size)

    def items(self, indices: list[int]) -> list[bytes]:
        """The image files at these positions, in that order: random access for batches in shuffled order.
        The archive stays open between calls; call from one thread at a time (zipfile shares a handle)."""
        if self._archive is None:
            self._archive = self._open()
        return [self._archive.read(self.members[i]) for i in indices]

    def _open(self) -> zipfile.ZipFile:
        return zipfile.ZipFile(self.source if isinstance(self.source, Path) else io.BytesIO(self.source))


def _source(store: BlobStore, blob: str) -> Path | bytes:
    path = store.local_path(blob)
    return path if path is not None else store.get(blob)


@contextmanager
def _lines(source: Path | bytes) -> Iterator[Iterator[bytes]]:
    # Binary lines split on b"\n" only: a text holding U+2028 stays on its line.
    handle: AbstractContextManager[IO[bytes]] = open(source, "rb") if isinstance(source, Path) else io.BytesIO(source)
    with handle as lines:
        yield iter(lines)


def _slice(labels: np.ndarray | None, start: int, size: int) -> np.ndarray | None:
    return labels[start:start + size] if labels is not None else None


def _check_size(size: int) -> None:
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, got {size}")
