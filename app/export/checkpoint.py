"""The checkpoint download: θ of a version as one safetensors file that says what it is.

A safetensors file is only tensors by name; without its model row nobody can rebuild the network it
belongs to. Its header's `__metadata__` (string to string) therefore carries the model's name, the
version, the architecture spec (JSON), the tasks in the order learned with their number of classes
and class names (JSON), and the lifelong release that wrote it. `format: pt` is the key
safetensors' own torch loaders and transformers look for.

A version that answers without a task also carries what those answers need, under names no θ key
has: `class_statistics.<task>.<counts|sums|gram|projected_sums|projected_gram>` per task, and the fitted
predictors as `task_free.<means|precision|ridge|held_back_scores|projection>`, with `task_free` and
`class_statistics` (JSON) in the metadata. θ is every other tensor.
"""

from __future__ import annotations

import json

from safetensors.torch import save

from app.db.tables import Model, Version
from app.learning.provenance import lifelong_version
from app.store import BlobStore
from app.task_free.stored import task_free_metadata, task_free_tensors
from app.versions.service import load_theta


def checkpoint_metadata(model: Model, version: Version) -> dict[str, str]:
    tasks = [{"name": t["name"], "num_classes": t["num_classes"], "classes": t.get("classes")} for t in version.tasks]
    return {
        "format": "pt",
        "model": model.name,
        "version": str(version.number),
        "architecture": json.dumps(model.architecture, sort_keys=True),
        "tasks": json.dumps(tasks),
        "lifelong_version": lifelong_version(),
        **task_free_metadata(version.class_statistics, version.task_free),
    }


def checkpoint_file(store: BlobStore, model: Model, version: Version) -> bytes:
    """θ (put together from its parts where it is stored in parts) with the metadata in its header."""
    theta = {name: tensor.contiguous() for name, tensor in load_theta(store=store, version=version).items()}
    extra = task_free_tensors(store, version.class_statistics, version.task_free)
    return save(theta | extra, metadata=checkpoint_metadata(model, version))
