"""What `lifelong predict --inputs FILE` sends: arrays from .npy/.npz, texts from .txt, .jsonl or .csv.

The text formats follow the dataset uploads' rules (app/datasets/text.py), so a file that uploads as a
text dataset predicts as one, labels ignored:
- `.txt`: one text per line; blank lines are skipped (a text cannot span lines here);
- `.jsonl`: per non-blank line an object with a string `text` (other fields, `label` among them, ignored)
  or a bare JSON string;
- `.csv`: a header naming a `text` column (any case) and that column of every row; a `.csv` without one
  is numbers, one row per input, sent as an array like a `.npy`.
A file that cannot be read so is a usage error (exit 2) naming the file and the line, never numpy's
complaint about pickles, which is what a text file read as `.npy` used to print.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from app.commands.common import ExitCode, fail

TEXT_SUFFIXES = (".txt", ".jsonl", ".csv")
FORMATS = ".npy, .npz (x), .csv (a 'text' column, or numbers), .jsonl ('text' or a string per line) or .txt"


def read_inputs(path: Path) -> np.ndarray | list[str]:
    """The rows of `path`: an array, or a list of texts (exit 2 with the reason where it holds neither)."""
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        return _arrays(path)
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        fail(f"--inputs {path}: not UTF-8 text ({error}); inputs are {FORMATS}", ExitCode.USAGE)
    except OSError as error:
        fail(f"--inputs {path}: cannot read it ({error.strerror})", ExitCode.USAGE)
    rows = {".txt": _lines, ".jsonl": _jsonl, ".csv": _csv}[suffix](path, content)
    if len(rows) == 0:
        fail(f"--inputs {path}: holds no inputs", ExitCode.USAGE)
    return rows


def _lines(_path: Path, content: str) -> list[str]:
    return [line for line in content.splitlines() if line.strip()]


def _jsonl(path: Path, content: str) -> list[str]:
    texts = []
    for number, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            fail(f"--inputs {path}: line {number} is not JSON ({error})", ExitCode.USAGE)
        text = record.get("text") if isinstance(record, dict) else record
        if not isinstance(text, str):
            fail(f"--inputs {path}: line {number} is neither a string nor an object with a string 'text'",
                 ExitCode.USAGE)
        texts.append(text)
    return texts


def _csv(path: Path, content: str) -> np.ndarray | list[str]:
    try:
        rows = [row for row in csv.reader(io.StringIO(content, newline="")) if any(cell.strip() for cell in row)]
    except csv.Error as error:
        fail(f"--inputs {path}: not a readable .csv file ({error})", ExitCode.USAGE)
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if "text" in header:
        column = header.index("text")
        short = next((i for i, row in enumerate(rows[1:], start=2) if len(row) <= column), None)
        if short is not None:
            fail(f"--inputs {path}: row {short} has no '{rows[0][column]}' cell", ExitCode.USAGE)
        return [row[column] for row in rows[1:]]
    if len({len(row) for row in rows}) > 1:
        fail(f"--inputs {path}: its rows have different numbers of cells", ExitCode.USAGE)
    try:
        return np.asarray([[float(cell) for cell in row] for row in rows], dtype=np.float32)
    except ValueError:
        fail(f"--inputs {path}: a .csv of texts needs a header naming a 'text' column; without one every cell"
             " must be a number", ExitCode.USAGE)
    raise AssertionError("unreachable")


def _arrays(path: Path) -> np.ndarray:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        fail(f"--inputs {path}: not a readable .npy/.npz file; inputs are {FORMATS}", ExitCode.USAGE)
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        if not loaded.files:
            fail(f"--inputs {path}: holds no arrays", ExitCode.USAGE)
        return loaded["x" if "x" in loaded.files else loaded.files[0]]
