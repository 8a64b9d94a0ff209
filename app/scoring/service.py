"""Score a stored version on labeled data: its predictions on a task's head against the labels.

The data is a DataRef as everywhere (a dataset id, or inline arrays or texts with labels), checked as
a task's eval set is (kind, shape, labels present and in range, class names the task knows), and
bounded by the prediction limits: at most LIFELONG_MAX_PREDICT_ROWS rows (and inline rows at most
LIFELONG_MAX_INLINE_ROWS), else 413. It runs in the request, through the same cached network and
the same `evaluation.predict` as predictions and as a job's accuracy, so scoring a task's own eval
set at a version gives exactly the accuracy that version lists.

Labels given as class names are matched to the task's classes by name; integer labels are the
task's class indices. The confusion is counted per class and per occupied cell (app/scoring/confusion.py),
never as a classes² matrix: the dense matrix is drawn only for at most LIFELONG_MAX_CONFUSION_CLASSES
classes, and above that the answer lists that many classes and top confusions.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import numpy as np
import torch
from sqlalchemy.orm import Session

from app.aliases.service import resolve_version
from app.architectures import registry
from app.architectures.spec import ArchitectureSpec
from app.datasets.inputs import load_inputs
from app.datasets.service import PreparedData, check_fits, prepare_data
from app.db.lookups import get_model, get_version
from app.db.tables import Model, Version
from app.errors import Invalid, NotFound, TooLarge
from app.limits import UnpackLimits, check_inline_rows
from app.mas import evaluation, task_free
from app.mas.networks import InputSpec, MultiHeadNet
from app.models.networks import version_network
from app.predictions.cache import NetworkCache
from app.predictions.service import model_inputs
from app.predictions.task_free import answer_rows, check_answerable, class_labels, head_of
from app.scoring.confusion import Confusion, count_confusion, dense_matrix, listed_classes, top_confusions
from app.scoring.schemas import CellCount, ClassScore, EvaluateOut, EvaluateRequest, TaskFreeScore
from app.settings import Settings
from app.store import BlobStore
from app.task_free.options import TaskFreeOptions


def evaluate(*, session: Session, store: BlobStore, cache: NetworkCache, settings: Settings, model_name: str,
             request: EvaluateRequest) -> EvaluateOut:
    """Accuracy, per-class precision and recall and the confusion matrix of `request.task` at the version
    the request names (by number, alias, or production)."""
    model = get_model(session, model_name)
    stored = get_version(session, model, resolve_version(session=session, model=model, version=request.version,
                                                         alias=request.alias))
    tasks = {t["name"]: t for t in stored.tasks}
    if request.task is None:
        return _evaluate_task_free(session, store, cache, settings, model=model, stored=stored, request=request)
    if request.task not in tasks:
        raise NotFound(f"version {stored.number} of model {model.name!r} has no task {request.task!r}"
                       f" (it has {list(tasks)})")
    classes, num_classes = tasks[request.task].get("classes"), int(tasks[request.task]["num_classes"])
    architecture = model.architecture
    data = _prepare(session, request, architecture, settings, num_classes=num_classes, classes=classes)
    parent = _parent(session, model, stored)
    net, x, labels = _network_and_data(session, store, cache, architecture, stored, data, parent)
    predicted, _ = evaluation.predict(net, request.task, x)
    labels = _task_labels(labels, data.classes, classes)
    confusion = count_confusion(labels, predicted.cpu().numpy(), num_classes)
    flips = {}
    if parent is not None and any(t["name"] == request.task for t in parent.tasks):
        before, _ = evaluation.predict(_network(store, cache, architecture, parent), request.task, x)
        flips[request.task] = evaluation.flip_rates(before.cpu(), predicted.cpu(), torch.from_numpy(labels))
    return EvaluateOut(model=model_name, version=stored.number, alias=request.alias, task=request.task,
                       accuracy=confusion.accuracy, **_confusion_out(confusion, classes, settings),
                       **_flips_out(parent, flips))


def _evaluate_task_free(session: Session, store: BlobStore, cache: NetworkCache, settings: Settings, *, model: Model,
                        stored: Version, request: EvaluateRequest) -> EvaluateOut:
    """The task-free answer (the model's predictor, over every class learned) scored on labeled data whose
    labels are global class indices or class names (`task/name` where a name is not unique)."""
    check_answerable(model.name, stored.number, stored.tasks, stored.task_free)
    options = TaskFreeOptions.of(model.task_free)
    head = head_of(store, stored.task_free, options)
    classes = class_labels(head, stored.tasks)
    architecture = model.architecture
    data = _checked_data(session, request, architecture, settings, num_classes=len(classes))
    parent = _parent(session, model, stored)
    net, x, labels = _network_and_data(session, store, cache, architecture, stored, data, parent)
    labels = _global_labels(labels, data.classes, classes)
    answer = answer_rows(net, head, options.predictor, x)
    flips = {}
    if parent is not None and parent.task_free:
        earlier = answer_rows(_network(store, cache, architecture, parent), head_of(store, parent.task_free, options),
                              options.predictor, x)
        true_task = head.catalog.class_task[torch.from_numpy(labels)]
        for index, name in enumerate(head.catalog.tasks):
            rows = true_task == index
            if rows.any():
                flips[name] = evaluation.flip_rates(earlier.classes[rows], answer.classes[rows],
                                                    torch.from_numpy(labels)[rows])
    scores = task_free.score(answer.classes, answer.probabilities, torch.from_numpy(labels), head.catalog)
    confusion = count_confusion(labels, answer.classes.cpu().numpy(), len(classes))
    return EvaluateOut(model=model.name, version=stored.number, alias=request.alias, predictor=options.predictor,
                       task_free=TaskFreeScore(accuracy=scores.accuracy, task_accuracy=scores.task_accuracy,
                                               ece=scores.ece if math.isfinite(scores.ece) else None,
                                               unknown=float(answer.unknown.double().mean())),
                       accuracy=scores.accuracy, **_confusion_out(confusion, [c["label"] for c in classes], settings),
                       **_flips_out(parent, flips))


def _network_and_data(session: Session, store: BlobStore, cache: NetworkCache, architecture: ArchitectureSpec,
                      stored: Version, data: PreparedData, parent: Version | None
                      ) -> tuple[MultiHeadNet, torch.Tensor, np.ndarray]:
    """The version's network (cached) and the data's inputs and labels, read after the transaction ends."""
    for row in (stored, data.dataset, parent):  # their columns stay readable once the transaction below has ended
        if row is not None:
            session.expunge(row)
    session.rollback()
    net = _network(store, cache, architecture, stored)
    x, labels = _inputs_and_labels(store, architecture, data, net.input_spec)
    return net, x, labels


def _network(store: BlobStore, cache: NetworkCache, architecture: ArchitectureSpec, version: Version) -> MultiHeadNet:
    return cache.get((json.dumps(architecture, sort_keys=True), version.theta_blob),
                     lambda: version_network(store, architecture, version))


def _parent(session: Session, model: Model, stored: Version) -> Version | None:
    """The version `stored` was made from: flips are counted against it."""
    return get_version(session, model, stored.parent) if stored.parent is not None else None


def _flips_out(parent: Version | None, flips: dict[str, evaluation.Flips]) -> dict[str, Any]:
    return {"parent": parent.number if parent is not None else None,
            "negative_flips": {task: f.negative for task, f in flips.items()},
            "positive_flips": {task: f.positive for task, f in flips.items()}}


def _global_labels(labels: np.ndarray, data_classes: list[str] | None, classes: list[dict[str, str]]) -> np.ndarray:
    """The data's labels as global class indices: integers as they are, names matched to the classes."""
    if not data_classes:
        return labels.astype(np.int64)
    names = Counter(c["label"] for c in classes)
    position: dict[str, int] = {}
    for index, entry in enumerate(classes):
        position[f"{entry['task']}/{entry['label'].removeprefix(entry['task'] + '/')}"] = index
        if names[entry["label"]] == 1:
            position[entry["label"]] = index
    missing = [name for name in data_classes if name not in position]
    if missing:
        ambiguous = [name for name in missing if names[name] > 1]
        raise Invalid(f"data: classes {missing[:10]} are not among the version's classes "
                      f"{[c['label'] for c in classes][:10]}" + (f" ({ambiguous[:5]} belong to several tasks: write "
                                                                 "them as task/name)" if ambiguous else ""))
    return np.asarray([position[name] for name in data_classes], dtype=np.int64)[labels]


def _checked_data(session: Session, request: EvaluateRequest, architecture: ArchitectureSpec, settings: Settings, *,
                  num_classes: int) -> PreparedData:
    """The data, checked against the model, within the prediction limits; 413 and 422 say why not."""
    inline = request.data.inputs if request.data.inputs is not None else request.data.texts
    check_inline_rows(inline, settings.max_inline_rows, "data")
    data = prepare_data(session=session, ref=request.data, purpose="data", limits=UnpackLimits.of(settings))
    if data.n > settings.max_predict_rows:
        raise TooLarge(f"data: {data.n} rows, more than LIFELONG_MAX_PREDICT_ROWS = {settings.max_predict_rows}:"
                       " evaluate runs in the request, so score a smaller dataset (or split this one)")
    check_fits(prepared=data, input_shape=architecture.get("input_shape", []), labels=True,
               num_classes=None if data.classes else num_classes,
               kind=registry.get_architecture(architecture["kind"]).input_kind)
    return data


def _prepare(session: Session, request: EvaluateRequest, architecture: ArchitectureSpec, settings: Settings, *,
             num_classes: int, classes: list[str] | None) -> PreparedData:
    """The data, checked against the model and the task, within the prediction limits; 413 and 422 say why not."""
    data = _checked_data(session, request, architecture, settings, num_classes=num_classes)
    if data.classes is not None:
        if classes is None:
            raise Invalid(f"data: task {request.task!r} was learned from integer labels, and these labels are"
                          " class names: give the class indices")
        unknown = sorted(set(data.classes) - set(classes))
        if unknown:
            raise Invalid(f"data: classes {unknown[:10]} are not among task {request.task!r}'s classes {classes[:10]}")
    return data


def _inputs_and_labels(store: BlobStore, architecture: ArchitectureSpec, data: PreparedData,
                       input_spec: InputSpec) -> tuple[torch.Tensor, np.ndarray]:
    """The model's inputs and the data's own label indices, from a dataset or from inline data."""
    if data.dataset is not None:
        x, labels = load_inputs(store, architecture, data.dataset, input_spec)
        return x, labels.numpy()
    if data.arrays is not None:
        return model_inputs(architecture=architecture, inputs=data.arrays.x), data.arrays.y
    return model_inputs(architecture=architecture, inputs=data.texts.texts), data.texts.y


def _task_labels(labels: np.ndarray, data_classes: list[str] | None, task_classes: list[str] | None) -> np.ndarray:
    """Label indices into the data's classes as the task's class indices, matched by name."""
    if not data_classes or not task_classes:
        return labels.astype(np.int64)
    position = {name: index for index, name in enumerate(task_classes)}
    return np.asarray([position[name] for name in data_classes], dtype=np.int64)[labels]


def _confusion_out(confusion: Confusion, classes: list[str] | None, settings: Settings) -> dict[str, Any]:
    """The answer's confusion fields, within LIFELONG_MAX_CONFUSION_CLASSES (app/scoring/confusion.py)."""
    limit = settings.max_confusion_classes
    truncated = confusion.num_classes > limit
    cells = [CellCount(labeled=a, predicted=b, count=c) for a, b, c in top_confusions(confusion, limit)]
    return {"n": confusion.n, "classes": confusion.num_classes, "truncated": truncated,
            "per_class": class_scores(confusion=confusion, classes=classes, listed=listed_classes(confusion, limit)),
            "confusion_matrix": None if truncated else dense_matrix(confusion),
            "top_confusions": cells}


def class_scores(*, confusion: Confusion, classes: list[str] | None, listed: list[int]) -> list[ClassScore]:
    """Precision and recall of each listed class (None where undefined: never predicted, or never labeled)."""
    support, predicted, right = confusion.support, confusion.predicted, confusion.right
    return [ClassScore(index=k, label=classes[k] if classes else None,
                       precision=float(right[k] / predicted[k]) if predicted[k] else None,
                       recall=float(right[k] / support[k]) if support[k] else None,
                       support=int(support[k]), predicted=int(predicted[k]))
            for k in listed]
