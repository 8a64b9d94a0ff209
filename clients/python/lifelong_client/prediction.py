"""A prediction's request and answer: which body `inputs` become, and the answer as numpy arrays.

The inputs decide the body: an array is a raw .npy body, texts a JSON body, images a multipart upload.
A single string is one text (never its characters), a single path or bytes one image; a list is read
item by item, and a list that mixes kinds, or holds something that is none of them, is refused here
with the item named, before anything is sent.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

NPY = "application/x-npy"

# What `Client.predict` takes: an array [n, *input_shape], one text or image, or a list of texts or images.
Image = os.PathLike | bytes | bytearray | memoryview
Inputs = np.ndarray | str | Image | Iterable[str] | Iterable[str | Image]
Kind = Literal["text", "image"]


@dataclass(frozen=True)
class Prediction:
    """A prediction's answer. With a task: classes within that task. Without one (task-free, `task` None):
    classes over every class learned, with each row's task, confidence and whether it is unknown."""

    model: str
    version: int
    task: str | None  # None: a task-free answer
    predictions: np.ndarray  # int64 class per row (task-free: over every class learned, in `classes` order)
    probabilities: np.ndarray | None  # float32 [n, classes] when asked for
    labels: list[str] | None = None  # class names (task-free: always, "task/index" where labels were numbers)
    alias: str | None = None  # the alias the request named
    tasks: list[str] | None = None  # task-free: the task of each row's class
    confidence: np.ndarray | None = None  # task-free: float32 calibrated probability of each row's class
    unknown: np.ndarray | None = None  # task-free: bool, the row is unlike every class learned
    score: np.ndarray | None = None  # task-free: float32 familiarity; below `threshold` is unknown
    threshold: float | None = None
    predictor: str | None = None  # task-free: the model's predictor that answered
    classes: list[dict[str, str]] | None = None  # task-free with probabilities: [{"task", "label"}] per column

    @property
    def task_free(self) -> bool:
        return self.task is None

    @classmethod
    def of(cls, answer: Mapping[str, Any]) -> Prediction:
        """The server's JSON answer as arrays."""
        def array(key: str, dtype: type) -> np.ndarray | None:
            return None if answer.get(key) is None else np.asarray(answer[key], dtype=dtype)

        return cls(model=answer["model"], version=answer["version"], task=answer.get("task"),
                   predictions=np.asarray(answer["predictions"], dtype=np.int64),
                   probabilities=array("probabilities", np.float32), labels=answer.get("labels"),
                   alias=answer.get("alias"), tasks=answer.get("tasks"), confidence=array("confidence", np.float32),
                   unknown=array("unknown", np.bool_), score=array("score", np.float32),
                   threshold=answer.get("threshold"), predictor=answer.get("predictor"), classes=answer.get("classes"))

    def as_json(self) -> dict[str, Any]:
        """The answer as the server sent it (arrays as lists, absent fields left out)."""
        fields = {"model": self.model, "version": self.version, "alias": self.alias, "task": self.task,
                  "predictions": self.predictions, "labels": self.labels, "tasks": self.tasks,
                  "confidence": self.confidence, "unknown": self.unknown, "score": self.score,
                  "threshold": self.threshold, "predictor": self.predictor, "probabilities": self.probabilities,
                  "classes": self.classes}
        return {key: value.tolist() if isinstance(value, np.ndarray) else value
                for key, value in fields.items() if value is not None}


def predict_request(inputs: Any, *, probabilities: bool, chosen: Mapping[str, Any]) -> dict[str, Any]:
    """httpx's keyword arguments for a predict request: an .npy body, a JSON body of texts, or images as
    multipart `files`; `chosen` names the task, version or alias. Raises TypeError or ValueError, naming
    the item, for inputs that are none of these or mix them, before anything is sent."""
    params = {"probabilities": str(probabilities).lower(), **chosen}
    if isinstance(inputs, np.ndarray) and inputs.dtype.kind in "biuf":
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(inputs, dtype=np.float32), allow_pickle=False)
        return {"params": params, "content": buffer.getvalue(), "headers": {"Content-Type": NPY}}
    items = _items(inputs)
    kinds = [_kind(index, item) for index, item in enumerate(items)]
    if "text" in kinds and "image" in kinds:
        text, image = kinds.index("text"), kinds.index("image")
        raise ValueError(f"inputs mix texts and images (item {text} is a text, item {image} an image file): "
                         "a model takes one kind; send them in separate requests")
    if kinds[0] == "text":
        return {"json": {"texts": items, "probabilities": probabilities, **chosen}}
    return {"params": params, "files": [("files", image_file(item)) for item in items]}


def _items(inputs: Any) -> list[Any]:
    """The inputs as a list of items: one item for a str, a path or bytes; the elements of anything else."""
    if isinstance(inputs, str | os.PathLike | bytes | bytearray | memoryview):
        if isinstance(inputs, str) and os.path.isfile(inputs):
            # In a list a file's name is that image; alone, a string is one text: say which was meant.
            raise ValueError(f"inputs {inputs!r} is one text that also names a file: pass Path({inputs!r}) or "
                             f"[{inputs!r}] to send the image")
        return [inputs]
    if isinstance(inputs, np.ndarray):
        if inputs.dtype.kind not in "USO":
            raise TypeError(f"inputs: an array of dtype {inputs.dtype} is neither numbers nor texts")
        inputs = inputs.tolist()
    if isinstance(inputs, Mapping) or not isinstance(inputs, Iterable):
        raise TypeError(f"inputs must be an array, a text, an image (path or bytes) or a list of texts or images, "
                        f"not {type(inputs).__name__}")
    items = list(inputs)
    if not items:
        raise ValueError("inputs is empty: give at least one row, text or image")
    return items


def _kind(index: int, item: Any) -> Kind:
    """Whether one list item is a text or an image; anything else (a number, a row) is refused by index."""
    if isinstance(item, str):
        return "image" if os.path.isfile(item) else "text"
    if isinstance(item, os.PathLike | bytes | bytearray | memoryview):
        return "image"
    if isinstance(item, int | float | np.number | list | tuple | np.ndarray):
        raise TypeError(f"inputs item {index} is {type(item).__name__}: send numeric rows as one numpy array "
                        "[n, *input_shape] (np.asarray(rows)), not a list")
    raise TypeError(f"inputs item {index} is {type(item).__name__}: items are texts (str) or images (paths, bytes)")


def image_file(item: str | os.PathLike | bytes | bytearray | memoryview) -> tuple[str, bytes, str]:
    """(name, bytes, content type) of one image for a multipart upload."""
    if isinstance(item, bytes | bytearray | memoryview):
        content = bytes(item)
        kind = "image/png" if content.startswith(b"\x89PNG") else "image/jpeg"
        return ("image.png" if kind == "image/png" else "image.jpg", content, kind)
    path = Path(item)
    kind = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
    return (path.name, path.read_bytes(), kind)
