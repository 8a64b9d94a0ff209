"""Text datasets: `.jsonl` records or a `.csv` with a `text` column, or inline `texts`, checked and stored.

Every record is checked at the door, once: a string `text` no longer than LIFELONG_MAX_TEXT_CHARS,
and either every record labelled or none (a label is an integer or a class name, see labels.py).
Other fields and columns are ignored, so an export with ids or metadata uploads as it is.

The stored form (`encode_texts`) is JSON lines, which a worker reads line by line with bounded
memory: a first line `{"format": "lifelong-texts/1", "n": …, "labels": [...] | null}` (the labels
are small next to the texts, and a reader wants them all up front), then one JSON string per text.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.datasets.labels import check_unicode, encode_labels, labels_from_cells
from app.errors import Invalid, TooLarge
from app.limits import UnpackLimits

TEXTS_FORMAT = "lifelong-texts/1"


@dataclass(frozen=True)
class Texts:
    texts: list[str]
    y: np.ndarray | None  # int64 [n]
    classes: list[str] | None

    @property
    def n(self) -> int:
        return len(self.texts)

    @property
    def max_label(self) -> int | None:
        return int(self.y.max()) if self.y is not None else None


def parse_jsonl(data: bytes, limits: UnpackLimits) -> Texts:
    """One JSON object per line with a string `text` and an optional `label`; blank lines are skipped.
    Lines are split at "\n" only, so that a refusal's line number is the one an editor shows, and each is
    decoded on its own: the upload is never held a second time as one string or a list of lines."""
    texts: list[str] = []
    labels: list[Any] = []
    unlabelled: list[str] = []
    for number, line in enumerate(io.BytesIO(data), start=1):
        record = _json_record(line.removeprefix(_BOM) if number == 1 else line, number)
        if record is None:
            continue
        texts.append(_checked_text(record.get("text", _MISSING), f"jsonl line {number}", limits))
        if record.get("label") is not None:
            labels.append(_checked_label(record["label"], f"jsonl line {number}"))
        else:
            unlabelled.append(f"line {number}")
    return _texts(texts, labels, source="jsonl", unlabelled=unlabelled)


_BOM = "\ufeff".encode()


def _json_record(line: bytes, number: int) -> dict[str, Any] | None:
    """The object on one .jsonl line, None for a blank line; 422 naming the line for anything else."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Invalid(f"jsonl line {number} is not UTF-8 text: {error}") from error
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except ValueError as error:
        raise Invalid(f"jsonl line {number} is not JSON: {error}") from error
    except RecursionError as error:  # json's C parser recurses once per bracket
        raise Invalid(f"jsonl line {number} is nested too deeply (thousands of brackets): a record is"
                      " {\"text\": \"…\", \"label\": …} with a string or integer label") from error
    if not isinstance(record, dict):
        raise Invalid(f"jsonl line {number} is not an object with a 'text' field")
    return record


def _checked_label(label: Any, where: str) -> Any:
    """A label as JSON gave it; a list or an object is refused here, where the line is known."""
    if isinstance(label, list | dict):
        raise Invalid(f"{where}: 'label' must be a class name (string) or an integer, got a JSON"
                      f" {'array' if isinstance(label, list) else 'object'}")
    if isinstance(label, str):
        check_unicode(label, f"{where}: the label")
    return label


def has_text_column(data: bytes) -> bool:
    """Whether a CSV upload's first row is a header naming a `text` column (a text, not an array, dataset)."""
    try:
        first = next(csv.reader(io.StringIO(data[:65536].decode("utf-8-sig", errors="ignore"), newline="")), [])
    except csv.Error:
        return False
    return "text" in {cell.strip().lower() for cell in first}


def csv_records(text: str) -> list[tuple[int, list[str]]]:
    """The non-blank records of a CSV text, each with the line of the file it starts on (1-based: a
    header is line 1). Every CSV refusal names a row by this number, which is what an editor shows,
    whatever blank lines or quoted line breaks come before it. Raises csv.Error."""
    return list(_records(csv.reader(io.StringIO(text, newline=""))))


def csv_rows(data: bytes, suffix: str = ".csv") -> Iterator[tuple[int, list[str]]]:
    """The records of `csv_records`, read one at a time from the upload's bytes (decoded a piece at a time),
    so that memory holds one row, not every row's strings: a 61 MB numeric CSV held as lists of str took
    about 15 times its size. A decoding or CSV error is a 422 naming the line."""
    reader = csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline=""))
    try:
        yield from _records(reader)
    except UnicodeDecodeError as error:
        raise Invalid(f"a {suffix} upload must be UTF-8 text (line {reader.line_num + 1} is not): {error}") from error
    except csv.Error as error:  # a stray carriage return, a NUL byte: not a CSV file we can read
        raise Invalid(f"not a readable .csv file (line {reader.line_num}): {error}") from error


def _records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    line = 1
    for row in reader:
        if any(cell.strip() for cell in row):
            yield line, row
        line = reader.line_num + 1


def parse_text_csv(data: bytes, limits: UnpackLimits) -> Texts:
    """A header with a `text` column and an optional `label` column; other columns are ignored."""
    records = csv_rows(data)
    header = [cell.strip().lower() for cell in next(records)[1]]
    text_column = header.index("text")
    label_column = header.index("label") if "label" in header else None
    texts, cells = [], []
    for line, row in records:
        if len(row) != len(header):
            raise Invalid(f"csv line {line} has {len(row)} columns, expected {len(header)}")
        texts.append(_checked_text(row[text_column], f"csv line {line}", limits))
        if label_column is not None:
            if not row[label_column].strip():
                raise Invalid(f"csv line {line} has an empty 'label': label every row, or drop the column")
            cells.append(row[label_column])
    if not texts:
        raise Invalid("the text dataset is empty: the .csv file has a header but no rows")
    labels = labels_from_cells(cells, source="csv column 'label'") if label_column is not None else None
    return Texts(texts, labels.y if labels else None, labels.classes if labels else None)


def parse_inline_texts(texts: Sequence[Any], labels: Sequence[Any] | None, limits: UnpackLimits) -> Texts:
    checked = [_checked_text(text, f"texts[{i}]", limits) for i, text in enumerate(texts)]
    if labels is not None and len(labels) != len(checked):
        raise Invalid(f"labels must be one per text: {len(checked)} texts, {len(labels)} labels")
    return _texts(checked, list(labels or []), source="texts", unlabelled=[])


def encode_texts(texts: Texts) -> bytes:
    labels = texts.y.tolist() if texts.y is not None else None
    out = io.BytesIO()  # written line by line: no list of encoded lines beside the result
    out.write(json.dumps({"format": TEXTS_FORMAT, "n": texts.n, "labels": labels}).encode("utf-8"))
    for text in texts.texts:
        out.write(b"\n")
        out.write(json.dumps(text, ensure_ascii=False).encode("utf-8"))
    out.write(b"\n")
    return out.getvalue()


def read_texts_header(lines: Iterator[bytes]) -> dict[str, Any]:
    """The first line of a stored text blob; the caller reads one text per line after it."""
    header = json.loads(next(lines))
    if header.get("format") != TEXTS_FORMAT:
        raise ValueError(f"not a stored text dataset (format {header.get('format')!r})")
    return header


_MISSING = object()


def _checked_text(text: Any, where: str, limits: UnpackLimits) -> str:
    if text is _MISSING:
        raise Invalid(f"{where} has no 'text' field")
    if not isinstance(text, str):
        raise Invalid(f"{where}: 'text' must be a string, got {type(text).__name__}")
    check_unicode(text, f"{where}: the text")
    if len(text) > limits.max_text_chars:
        raise TooLarge(f"{where}: the text has {len(text)} characters, more than the limit of"
                       f" {limits.max_text_chars} (LIFELONG_MAX_TEXT_CHARS)")
    return text


def _texts(texts: list[str], labels: list[Any], *, source: str, unlabelled: list[str]) -> Texts:
    if not texts:
        raise Invalid(f"the text dataset is empty: {source} holds no texts")
    if not labels:
        return Texts(texts, None, None)
    if len(labels) != len(texts):
        first = f" ({source} {unlabelled[0]} has none)" if unlabelled else ""
        raise Invalid(f"{source}: {len(labels)} of {len(texts)} records have a 'label'{first}: label every"
                      " record, or none")
    encoded = encode_labels(labels, source=f"{source} labels")
    return Texts(texts, encoded.y, encoded.classes)
