"""Labels as a dataset stores them: integer class indices, with the class names when they were given.

A client may label with integers (as arrays always did: `classes` is None and an index is its own
name) or with class names, which become indices into `classes`, the sorted distinct names, so the
same names always give the same indices whatever order the rows come in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import Invalid

_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Labels:
    y: np.ndarray  # int64 [n], indices into `classes` when there are classes
    classes: list[str] | None


def encode_labels(raw: Sequence[Any], *, source: str) -> Labels:
    """All integers ≥ 0 (kept as they are) or all non-empty strings (class names), else 422."""
    if all(isinstance(label, int) and not isinstance(label, bool) for label in raw):
        if any(label < 0 for label in raw):
            raise Invalid(f"{source}: labels must be ≥ 0")
        try:
            return Labels(np.asarray(raw, dtype=np.int64), None)
        except OverflowError as error:
            raise Invalid(f"{source}: labels must be class indices, and {max(raw)} is far too large") from error
    if all(isinstance(label, str) for label in raw):
        if any(not label.strip() for label in raw):
            raise Invalid(f"{source}: a class name must not be empty")
        for label in raw:
            check_unicode(label, f"{source}: the class name {label[:40]!r}")
        classes = sorted(set(raw))
        index = {name: i for i, name in enumerate(classes)}
        return Labels(np.asarray([index[label] for label in raw], dtype=np.int64), classes)
    kinds = sorted({type(label).__name__ for label in raw})
    raise Invalid(f"{source}: labels must be all class names (strings) or all integers, got {', '.join(kinds)}")


def labels_from_cells(cells: Sequence[str], *, source: str) -> Labels:
    """Labels read from text cells (CSV): whole numbers are integer labels, anything else class names."""
    stripped = [cell.strip() for cell in cells]
    if all(_WHOLE_NUMBER.fullmatch(cell) for cell in stripped):
        return encode_labels([int(cell) for cell in stripped], source=source)
    return encode_labels(stripped, source=source)


def check_unicode(text: str, what: str) -> None:
    """422 for a lone surrogate (JSON's "\\ud800" decodes to one): it is not a character, and no UTF-8
    text, no database and no tokenizer can hold it."""
    found = _SURROGATE.search(text)
    if found is not None:
        raise Invalid(f"{what} holds a lone surrogate (\\u{ord(found.group()):04x} at character {found.start()}),"
                      " which is not valid Unicode: escape a character outside the BMP as a surrogate pair")
