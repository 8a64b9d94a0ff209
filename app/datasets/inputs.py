"""Data as a model's network takes it: checked against the model before a job is queued, then read by
the job in bounded chunks and preprocessed by the architecture's plugin.

`check_model_takes` refuses (422) data of the wrong kind or shape, or labels the task cannot hold,
while the request is still answered; `load_inputs` is how a job reads a dataset back. Both live here,
with the data, because learning and drift each use them and drift's refresh is a learning job: in
either of those packages they would tie the two together.

Texts become token ids and arrays reshaped rows, read a chunk at a time and kept (a few bytes per
token or value). Images are never all decoded at once: a job gets LazySamples that decode the rows it
asks for from the stored archive, a batch at a time, so its memory does not grow with the dataset
(benchmarks/service_real.py measures it). Labels that were class names are mapped to the task's class
indices by name, so an eval set may list a task's classes in any order or only some of them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from app.architectures import registry
from app.architectures.spec import ArchitectureSpec
from app.datasets.reader import ImageReader, open_dataset
from app.datasets.service import PreparedData, check_fits
from app.db.tables import Dataset
from app.errors import Invalid
from app.mas.networks import InputSpec
from app.mas.samples import LazySamples
from app.store import BlobStore

PREPROCESS_CHUNK = 256  # raw items decoded and preprocessed at a time


def check_model_takes(architecture: ArchitectureSpec, data: PreparedData, *, labels: bool,
                      num_classes: int | None = None, classes: list[str] | None = None) -> None:
    """422 unless the data is of the kind the model takes (arrays of its shape, texts, images) and, where
    labels are needed, they fit the task: in range, or class names the task knows."""
    check_fits(prepared=data, input_shape=architecture.get("input_shape", []), labels=labels,
               num_classes=None if classes else num_classes,
               kind=registry.get_architecture(architecture["kind"]).input_kind)
    if not labels or (classes is None and data.classes is None):
        return
    if classes is None or data.classes is None:
        raise Invalid(f"{data.purpose}: the train and eval labels must both be class names or both integers")
    unknown = sorted(set(data.classes) - set(classes))
    if unknown:
        raise Invalid(f"{data.purpose}: classes {unknown[:10]} are not among the train data's classes {classes[:10]}")


def load_inputs(store: BlobStore, architecture: ArchitectureSpec, dataset: Dataset,
                input_spec: InputSpec) -> tuple[Tensor | LazySamples, Tensor | None]:
    """(inputs [n, *input_spec.shape] in the trunk's dtype, dataset labels [n] or None)."""
    plugin = registry.get_architecture(architecture["kind"])
    reader = open_dataset(store, dataset)
    if isinstance(reader, ImageReader):
        labels = torch.from_numpy(reader.labels) if reader.labels is not None else None
        load = lambda rows: plugin.preprocess(architecture, reader.items(rows))  # noqa: E731
        return LazySamples(reader.n, input_spec.shape, input_spec.dtype, load), labels
    inputs: list[Tensor] = []
    labels: list[np.ndarray] = []
    for raw, chunk_labels in reader.chunks(PREPROCESS_CHUNK):
        inputs.append(input_spec.cast(plugin.preprocess(architecture, raw)))
        if chunk_labels is not None:
            labels.append(np.asarray(chunk_labels, dtype=np.int64))
    x = torch.cat(inputs) if inputs else torch.zeros(0, *input_spec.shape, dtype=input_spec.dtype)
    y = torch.from_numpy(np.concatenate(labels)) if labels else None
    return x, y


def task_labels(labels: Tensor | None, dataset: Dataset, classes: list[str] | None) -> Tensor:
    """Dataset label indices as the task's class indices: by name where the task has class names."""
    if labels is None:
        raise ValueError(f"dataset {dataset.id} has no labels")
    if not classes or not dataset.classes:
        return labels
    position = {name: index for index, name in enumerate(classes)}
    mapping = torch.tensor([position[name] for name in dataset.classes], dtype=torch.int64)
    return mapping[labels]
