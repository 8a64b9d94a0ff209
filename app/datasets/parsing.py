"""Turn uploaded bytes or inline JSON into checked data (arrays, texts or images), or say exactly why not.

`parse_upload` picks the parser by the file's extension: `.npz` and numeric `.csv` are arrays (here),
`.jsonl` and a `.csv` with a `text` column are texts (text.py), `.zip` and `.tar` archives are
images (images.py); any other extension is refused by name. Everything a dataset must satisfy
whatever it is used for is checked at the door, once: finite float inputs with at least one row,
integer labels ≥ 0, one label per row. What depends on the use (the model's input shape, the
task's number of classes) is checked where the data is used. NumPy files are read with
allow_pickle=False (an upload can never execute code), and an .npz's arrays are sized from their
headers before they are loaded, so a small file that would expand past LIFELONG_MAX_UNPACKED_BYTES
is refused without being expanded.
"""

from __future__ import annotations

import io
import itertools
import math
import zipfile
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from app.datasets.images import Images, parse_image_archive
from app.datasets.labels import encode_labels
from app.datasets.text import Texts, csv_rows, has_text_column, parse_jsonl, parse_text_csv
from app.errors import Invalid, TooLarge
from app.limits import UnpackLimits

_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"


@dataclass(frozen=True)
class Arrays:
    x: np.ndarray  # float32 [n, *input_shape]
    y: np.ndarray | None  # int64 [n]
    classes: list[str] | None = None  # when the labels were given as class names

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def max_label(self) -> int | None:
        return int(self.y.max()) if self.y is not None else None


Parsed = Arrays | Texts | Images
SUPPORTED = (".npz, .csv, .jsonl, .zip or .tar (.tar.gz and .tgz too): arrays as .npz or .csv, texts as .jsonl or"
             " a .csv with a 'text' column, images in an archive")
_ARCHIVES = {".zip": "zip", ".tar": "tar", ".tar.gz": "tar.gz", ".tgz": "tar.gz"}


def parse_upload(data: bytes, filename: str | None, limits: UnpackLimits | None = None) -> tuple[Parsed, str]:
    """The checked data of an uploaded file and its format (`npz`, `csv`, `jsonl`, `zip`, `tar`, `tar.gz`).

    A file without an extension is read as before raw data existed: a zip is an .npz, anything else a CSV.
    """
    limits = limits or UnpackLimits()
    if not data:
        raise Invalid("the uploaded file is empty")
    name = (filename or "").lower()
    suffix = PurePosixPath(name).suffix
    archive = next((kind for ending, kind in _ARCHIVES.items() if name.endswith(ending)), None)
    if archive is not None:
        return parse_image_archive(data, "zip" if archive == "zip" else "tar", limits), archive
    if suffix == ".jsonl":
        return parse_jsonl(data, limits), "jsonl"
    if suffix == ".npz" or (not suffix and data[:4] in (_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
        return parse_npz(data, limits), "npz"
    if suffix == ".csv":
        return (parse_text_csv(data, limits) if has_text_column(data) else parse_csv(data)), "csv"
    if not suffix:
        return _parse_unnamed_csv(data, limits), "csv"
    raise Invalid(f"unsupported file type {suffix}; send {SUPPORTED}")


def _parse_unnamed_csv(data: bytes, limits: UnpackLimits) -> Parsed:
    """A file name without an extension is read as a CSV; a refusal says so, since the file may be
    something else entirely (a text file, a .npy) whose CSV complaint would only puzzle."""
    try:
        return parse_text_csv(data, limits) if has_text_column(data) else parse_csv(data)
    except Invalid as error:
        raise Invalid(f"the file name has no extension, so it was read as a .csv: {error.detail}. Name the"
                      f" file by its type; send {SUPPORTED}") from error


def parse_npz(data: bytes, limits: UnpackLimits | None = None) -> Arrays:
    limits = limits or UnpackLimits()
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise Invalid("expected an .npz archive (np.savez) with an array 'x', got a single array")
            if "x" not in archive.files:
                raise Invalid(f"the .npz file has no array 'x' (it has {sorted(archive.files)})")
            _check_npz_sizes(archive.zip, [n for n in ("x", "y") if n in archive.files], limits)
            x = archive["x"]
            y = archive["y"] if "y" in archive.files else None
    except (Invalid, TooLarge):
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
        raise Invalid(f"not a readable .npz file (pickled or corrupt arrays are refused): {error}") from error
    return check_arrays(x, y, source="x")


def _check_npz_sizes(archive: zipfile.ZipFile, names: list[str], limits: UnpackLimits) -> None:
    """413 when the arrays would expand past the limit, judged from each .npy header (shape × item size)
    and the zip's declared member sizes, before any array data is inflated."""
    total = 0
    for name in names:
        info = archive.getinfo(f"{name}.npy")
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            header = np.lib.format
            read_header = header.read_array_header_1_0 if version == (1, 0) else header.read_array_header_2_0
            shape, _, dtype = read_header(member)  # the header only, no data
        declared = math.prod(shape) * dtype.itemsize
        total += max(declared, info.file_size)
        if total > limits.max_unpacked_bytes:
            raise TooLarge(f"the .npz arrays expand to {total} bytes ('{name}' has shape {list(shape)} of"
                           f" {dtype}), more than the limit of {limits.max_unpacked_bytes}"
                           " (LIFELONG_MAX_UNPACKED_BYTES)")


def parse_csv(data: bytes) -> Arrays:
    """Numeric columns; a first row with any non-numeric cell is a header, whose `label` column is y.

    Rows are read one at a time and written into float32 blocks (labels apart), so that memory is the
    final array twice at most (the blocks and their concatenation), never a Python object per cell."""
    rows = csv_rows(data)
    first = next(rows, None)
    if first is None:
        raise Invalid("the .csv file has no rows")
    header = None if all(_is_number(cell) for cell in first[1]) else [cell.strip().lower() for cell in first[1]]
    label_column = header.index("label") if header is not None and "label" in header else None
    width = len(header) if header is not None else len(first[1])
    blocks = _CsvBlocks(width, label_column)
    for line, row in rows if header is not None else itertools.chain([first], rows):
        blocks.add(line, row)
    features, labels = blocks.finish()
    if features is None:
        raise Invalid("the .csv file has a header but no data rows")
    if features.shape[1] == 0:
        raise Invalid("the .csv file has a label column but no feature columns")
    return check_arrays(features, labels, source="csv")


_CSV_BLOCK_ROWS = 4096


class _CsvBlocks:
    """CSV rows gathered into float64 blocks of `_CSV_BLOCK_ROWS`, each checked (finite, within float32; whole,
    non-negative labels) and kept as float32 features and int64 labels: the checks name the row's line."""

    def __init__(self, width: int, label_column: int | None):
        self.width, self.label_column = width, label_column
        self.values = np.empty((_CSV_BLOCK_ROWS, width), dtype=np.float64)
        self.lines = np.empty(_CSV_BLOCK_ROWS, dtype=np.int64)
        self.filled = 0
        self.features: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []

    def add(self, line: int, row: list[str]) -> None:
        if len(row) != self.width:
            raise Invalid(f"csv line {line} has {len(row)} columns, expected {self.width}")
        try:
            self.values[self.filled] = [float(cell) for cell in row]
        except ValueError as error:
            raise Invalid(f"csv line {line} holds a value that is not a number: {error}") from error
        self.lines[self.filled] = line
        self.filled += 1
        if self.filled == _CSV_BLOCK_ROWS:
            self._flush()

    def finish(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        self._flush()
        if not self.features:
            return None, None
        features = self.features[0] if len(self.features) == 1 else np.concatenate(self.features)
        self.features.clear()
        if self.label_column is None:
            return features, None
        return features, np.concatenate(self.labels)

    def _flush(self) -> None:
        if self.filled == 0:
            return
        values, lines = self.values[:self.filled], self.lines[:self.filled]
        self.filled = 0
        column = self.label_column
        features = values if column is None else np.delete(values, column, axis=1)
        beyond = ~np.isfinite(features) | (np.abs(features) > np.finfo(np.float32).max)
        if beyond.any():
            raise Invalid(f"csv line {_first_line(beyond.any(axis=1), lines)} holds a non-finite value (NaN,"
                          " infinite or beyond float32)")
        self.features.append(features.astype(np.float32))
        if column is None:
            return
        labels = values[:, column]
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not whole.all():
            raise Invalid(f"csv line {_first_line(~whole, lines)}: the column 'label' must hold whole numbers")
        if (labels < 0).any():
            raise Invalid(f"csv line {_first_line(labels < 0, lines)}: labels must be ≥ 0")
        self.labels.append(labels.astype(np.int64))


def _first_line(bad_rows: np.ndarray, lines: np.ndarray) -> int:
    return int(lines[np.argmax(bad_rows)])


def parse_inline(inputs: list[Any], labels: list[int] | list[str] | None) -> Arrays:
    try:
        x = np.asarray(inputs, dtype=np.float64)
    except (ValueError, TypeError, OverflowError) as error:
        raise Invalid(f"inputs must be a list of rows of numbers, all of one shape: {error}") from error
    encoded = encode_labels(labels, source="labels") if labels is not None else None
    arrays = check_arrays(x, encoded.y if encoded is not None else None, source="inputs")
    return replace(arrays, classes=encoded.classes) if encoded is not None else arrays


def check_arrays(x: np.ndarray, y: np.ndarray | None, *, source: str) -> Arrays:
    if x.dtype.kind not in "fiu":
        raise Invalid(f"{source} must be a numeric (float or integer) array, got dtype {x.dtype}")
    if x.size == 0:
        raise Invalid(f"{source} is empty (shape {list(x.shape)}): at least one row of values is needed")
    if x.ndim < 2:
        raise Invalid(f"{source} must have shape [n, *input_shape] (a list of rows), got shape {list(x.shape)}")
    # No second copy of an upload that is float32 already; a read-only view is copied (torch writes to it).
    x = x.astype(np.float32, copy=not x.flags.writeable)
    if not np.all(np.isfinite(x)):
        bad = int(np.argwhere(~np.isfinite(x.reshape(x.shape[0], -1)))[0][0])
        raise Invalid(f"{source} holds non-finite values (NaN, infinite or beyond float32), first in row {bad}")
    if y is None:
        return Arrays(np.ascontiguousarray(x), None)
    if y.dtype.kind not in "iu":
        raise Invalid(f"labels must be integers, got dtype {y.dtype}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise Invalid(f"labels must be one integer per input row: {x.shape[0]} rows, labels of shape {list(y.shape)}")
    if int(y.min()) < 0:
        raise Invalid("labels must be ≥ 0")
    return Arrays(np.ascontiguousarray(x), y.astype(np.int64))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
