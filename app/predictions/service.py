"""Predict with a stored version: resolve model, version and task, fit the inputs, run the network.

The database is read once to find the version (app/predictions/lookup.py); its transaction ends
before the network is loaded or run, so a prediction never holds a lock that a worker writing
progress would wait on, and what was read is kept as plain values, not read again. An answer given is
offered to `Shadows` (the shadow replay, app/shadow/runner.py, which app/main.py wires): predictions know
only that small protocol, so the shadow's replay can answer through this module without a circle.
"""

from __future__ import annotations

import io
import json
import math
import time
from typing import Protocol

import numpy as np
import torch
from sqlalchemy.orm import Session

from app.architectures import registry
from app.architectures.spec import ArchitectureSpec
from app.datasets.parsing import check_arrays, parse_inline
from app.datasets.service import fit_inputs
from app.db.tables import Version
from app.errors import Invalid, NotFound, TooLarge
from app.mas import evaluation, passes
from app.mas.devices import device_of
from app.mas.networks import MultiHeadNet
from app.mas.samples import LazySamples
from app.metrics import count_prediction
from app.models.networks import version_network
from app.predictions.admission import check_deadline
from app.predictions.cache import NetworkCache
from app.predictions.lookup import Target, find_recent_target, recent_target
from app.predictions.schemas import ClassOut, PredictOut
from app.predictions.task_free import answer_rows, check_answerable, class_labels, concatenated, head_of
from app.store import BlobStore
from app.task_free.options import TaskFreeOptions
from app.timed_cache import TimedCache

RawInputs = np.ndarray | list[str] | list[bytes]  # array rows, texts, or image files

QUERY_ROWS = 100  # the API's limit for inputs carried in a GET's query string
# Longest forward pass, at the network's last pace, that runs on the event loop rather than in the
# thread pool: a few rows of a small network (whose pass costs less than the ~0.1 ms hop), while a pass
# long enough to hold other requests up noticeably takes the hop.
QUICK_S = 1e-3
SLICE_ROWS = 256  # rows between two looks at a prediction's deadline (a second or two of MiniLM on a CPU)
GPU_PASS_ROWS = 1024  # rows per forward pass on a GPU (the text encoder cuts its own passes further)


class Shadows(Protocol):
    """Where production's answers go to be replayed on a shadow version, off the request path."""

    def offer(self, answer: PredictOut, x: torch.Tensor, *, asked_version: int | None,
              asked_alias: str | None) -> None:
        """Take (or drop) one answer and its preprocessed inputs; returns at once."""


def predict(*, session: Session, store: BlobStore, cache: NetworkCache, targets: TimedCache, model_name: str,
            task: str | None, version: int | None, inputs: RawInputs, probabilities: bool,
            alias: str | None = None, shadows: Shadows | None = None) -> PredictOut:
    """`version` by number, or by `alias`, or production when neither is given (both: 422); `targets`
    keeps what was found a short while (app/predictions/lookup.py). Without `task`, a task-free answer."""
    target = find_recent_target(targets, session, model_name, task=task, version=version, alias=alias)
    if task is None:
        check_answerable(target.model, target.number, target.tasks, target.task_free)
    elif task not in target.task_entries:
        raise NotFound(f"version {target.number} of model {target.model!r} has no task {task!r} "
                       f"(it has {list(target.task_entries)})")
    session.rollback()  # the read transaction ends here: a prediction holds nothing a writer waits on
    x = model_inputs(architecture=target.architecture, inputs=inputs)
    check_deadline()
    net = cache.get(target.network_key, lambda: _load_network(session, store, target))
    if task is None:
        answer = _run_task_free(store, net, target, x=x, probabilities=probabilities, alias=alias)
    else:
        answer = _run(cache, net, target, task=task, x=x, probabilities=probabilities, alias=alias)
    if shadows is not None:
        shadows.offer(answer, x, asked_version=version, asked_alias=alias)
    return answer


def _run_task_free(store: BlobStore, net: MultiHeadNet, target: Target, *, x: torch.Tensor, probabilities: bool,
                   alias: str | None) -> PredictOut:
    answer = _task_free_answer(store, net, target, x=x, probabilities=probabilities, alias=alias)
    count_prediction(target.model, len(x))
    return answer


def _task_free_answer(store: BlobStore, net: MultiHeadNet, target: Target, *, x: torch.Tensor, probabilities: bool,
                      alias: str | None) -> PredictOut:
    assert target.task_free is not None
    options = TaskFreeOptions.of(target.options)
    head = head_of(store, target.task_free, options)
    answers = []
    for rows in _slices(x):
        check_deadline()
        answers.append(answer_rows(net, head, options.predictor, rows))
    answer = answers[0] if len(answers) == 1 else concatenated(answers)
    classes = class_labels(head, target.tasks)
    indices = answer.classes.tolist()
    return PredictOut(model=target.model, version=target.number, alias=alias, predictions=indices,
                      labels=[classes[i]["label"] for i in indices], tasks=[classes[i]["task"] for i in indices],
                      confidence=answer.confidence.tolist(), unknown=answer.unknown.tolist(),
                      score=answer.score.tolist(), threshold=head.threshold if math.isfinite(head.threshold) else None,
                      predictor=options.predictor,
                      probabilities=answer.probabilities.tolist() if probabilities else None,
                      classes=[ClassOut(**c) for c in classes] if probabilities else None)


def predict_in_memory(*, cache: NetworkCache, targets: TimedCache, model_name: str, task: str | None,
                      version: int | None, inputs: RawInputs, probabilities: bool,
                      alias: str | None = None, shadows: Shadows | None = None) -> PredictOut | None:
    """`predict` when nothing needs reading and the rows take at most QUICK_S at the network's last pace
    (its version in `targets`, its network in `cache`); None otherwise. On the event loop, where a
    1-row prediction costs less than the thread-pool hop it would otherwise take. Task-free answers
    always take the full path (their predictors are read from the store)."""
    if task is None or not isinstance(inputs, np.ndarray):
        return None  # texts and images are tokenised or decoded in the thread pool, never on the event loop
    target = recent_target(targets, model_name, task=task, version=version, alias=alias)
    if target is None:
        return None
    net = cache.quick(target.network_key, len(inputs), QUICK_S)
    if net is None:
        return None
    x = model_inputs(architecture=target.architecture, inputs=inputs)
    # On the event loop: never wait on a pass another request is running (that would hold up the loop).
    answer = _run(cache, net, target, task=task, x=x, probabilities=probabilities, alias=alias, share=False)
    if shadows is not None:
        shadows.offer(answer, x, asked_version=version, asked_alias=alias)
    return answer


def _run(cache: NetworkCache, net: MultiHeadNet, target: Target, *, task: str, x: torch.Tensor, probabilities: bool,
         alias: str | None, share: bool = True) -> PredictOut:
    """The task's answer, in slices (a look at the deadline between two), each sharing its pass with
    concurrent requests when `share` (app/predictions/batching.py)."""
    started = time.perf_counter()
    parts = []
    for rows in _slices(x):
        check_deadline()
        parts.append(shared_forward(cache=cache, key=target.network_key, net=net, task=task, x=rows,
                                    probabilities=probabilities) if share
                     else forward(net=net, task=task, x=rows, probabilities=probabilities))
    predicted = torch.cat([p for p, _ in parts]) if len(parts) > 1 else parts[0][0]
    probs = torch.cat([p for _, p in parts]) if probabilities and len(parts) > 1 else parts[0][1]
    cache.note_pace(target.network_key, len(x), time.perf_counter() - started)
    count_prediction(target.model, len(x))
    return _task_answer(target, task, predicted, probs, alias)


def _slices(x: torch.Tensor) -> list[torch.Tensor]:
    """The rows in slices of SLICE_ROWS: between two, a prediction looks at its deadline and its client."""
    return [x[start : start + SLICE_ROWS] for start in range(0, x.shape[0], SLICE_ROWS)] or [x]


def _task_answer(target: Target, task: str, predicted: torch.Tensor, probs: torch.Tensor | None,
                 alias: str | None) -> PredictOut:
    indices = predicted.tolist()
    classes = target.task_entries[task].get("classes")
    return PredictOut(model=target.model, version=target.number, alias=alias, task=task, predictions=indices,
                      labels=[classes[i] for i in indices] if classes else None,
                      probabilities=probs.tolist() if probs is not None else None)


def answer_version(*, store: BlobStore, net: MultiHeadNet, model: str, version: Version, options: dict | None,
                   task: str | None, x: torch.Tensor) -> PredictOut | None:
    """What `version` answers to preprocessed inputs `x`, as a prediction would (no metrics, no pace): a shadow's
    replay. None when it cannot answer (it lacks the task, or task-free predictors)."""
    target = Target(model, {}, version.id, version.number, version.tasks, version.theta_blob, version.task_free,
                    options)
    if task is None:
        if not target.task_free:
            return None
        return _task_free_answer(store, net, target, x=x, probabilities=False, alias=None)
    if task not in target.task_entries:
        return None
    predicted, _ = forward(net=net, task=task, x=x, probabilities=False)
    return _task_answer(target, task, predicted, None, None)


def forward(*, net: MultiHeadNet, task: str, x: torch.Tensor | LazySamples,
            probabilities: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(classes, probabilities when asked), on the CPU, from the network on its own device: in passes of at
    most passes.rows_per_pass rows on a CPU and GPU_PASS_ROWS on a GPU, with bf16 autocast on CUDA
    (probabilities within about 1e-2 of fp32's; tests/unit/test_cuda.py). The network is in eval mode
    (the cache holds it so); evaluation.predict's switch to eval mode and back walks every module twice,
    which cost a 1-row prediction as much as its forward pass, so it is taken only for a network in
    training mode or lazily decoded inputs."""
    device = device_of(net)
    if net.training or not isinstance(x, torch.Tensor) or x.shape[0] == 0:
        predicted, probs = evaluation.predict(net, task, x)
        return predicted, probs if probabilities else None
    rows = passes.rows_per_pass(net, x) if device.type == "cpu" else GPU_PASS_ROWS
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
        parts = [net(net.input_spec.cast(x[i : i + rows]).to(device, non_blocking=True), task).float()
                 for i in range(0, x.shape[0], rows)]
        logits = parts[0] if len(parts) == 1 else torch.cat(parts)
        predicted, probs = logits.argmax(1), logits.softmax(1) if probabilities else None
    if device.type == "cpu":
        return predicted, probs
    return predicted.cpu(), probs.cpu() if probs is not None else None


def shared_forward(*, cache: NetworkCache, key: object, net: MultiHeadNet, task: str, x: torch.Tensor,
                   probabilities: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`forward`, in one pass with the concurrent requests for the same network and task (batching.py);
    the probabilities are computed for every pass (cheap next to the network) and dropped where unasked."""
    predicted, probs = cache.passes.run((key, task), x,
                                        lambda rows: forward(net=net, task=task, x=rows, probabilities=True))
    return predicted, probs if probabilities else None


def _load_network(session: Session, store: BlobStore, target: Target) -> MultiHeadNet:
    """The version's network, built from its θ blobs outside any transaction (it may take seconds)."""
    stored = session.get_one(Version, target.version_id)
    session.expunge(stored)  # detached with what was read: the rollback does not expire it
    session.rollback()
    return version_network(store, target.architecture, stored)


def model_inputs(*, architecture: ArchitectureSpec, inputs: RawInputs) -> torch.Tensor:
    """Raw inputs preprocessed by the model's architecture; 422 when they are not what it takes."""
    plugin = registry.get_architecture(architecture["kind"])
    given = "arrays" if isinstance(inputs, np.ndarray) else "texts" if all(isinstance(i, str) for i in inputs) \
        else "images"
    expected = {"array": "arrays", "text": "texts", "image": "images"}[plugin.input_kind]
    if isinstance(inputs, np.ndarray) and expected != "arrays" and inputs.size == 0:
        given = expected  # an empty request is empty in any form
    if given != expected:
        hint = {"arrays": "'inputs' (rows of numbers)", "texts": "'texts' (strings)",
                "images": "image files (multipart 'files', or one image/png or image/jpeg body)"}[expected]
        raise Invalid(f"a {architecture['kind']} model takes {expected}, not {given}: send {hint}")
    if isinstance(inputs, np.ndarray):
        if "input_shape" in architecture:
            inputs = fit_inputs(x=inputs, input_shape=architecture["input_shape"], purpose="inputs")
        return torch.from_numpy(np.ascontiguousarray(inputs))
    try:
        return plugin.preprocess(architecture, inputs)
    except ValueError as error:
        raise Invalid(f"inputs: {error}") from error


def check_npy_size(body: bytes) -> None:
    """422 unless the .npy header declares exactly the bytes that follow it: a header that promises
    10¹² rows would otherwise make NumPy try to allocate them before reading a byte."""
    stream = io.BytesIO(body)
    try:
        major, _ = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
    except (ValueError, OSError, EOFError, SyntaxError) as error:
        raise Invalid(f"the body is not a readable .npy array (pickled arrays are refused): {error}") from error
    if dtype.hasobject:
        raise Invalid("the body holds Python objects: pickled arrays are refused; send a numeric .npy array")
    declared = math.prod(shape) * dtype.itemsize
    if declared != len(body) - stream.tell():
        raise Invalid(f"the .npy header declares shape {list(shape)} of {dtype} ({declared} bytes), but"
                      f" {len(body) - stream.tell()} bytes follow it")


def inputs_from_json(*, inputs: list, max_rows: int) -> np.ndarray:
    if len(inputs) > max_rows:
        raise TooLarge(f"{len(inputs)} rows in one request, more than LIFELONG_MAX_PREDICT_ROWS = {max_rows}")
    return parse_inline(inputs, None).x


def inputs_from_texts(*, texts: list[str], max_texts: int) -> list[str]:
    if len(texts) > max_texts:
        raise TooLarge(f"{len(texts)} texts in one request, more than LIFELONG_MAX_PREDICT_TEXTS = {max_texts}: "
                       "send them in several requests, or upload the rows as a dataset and score it with evaluate")
    return texts


def inputs_from_query(text: str) -> np.ndarray:
    try:
        inputs = json.loads(text)
    except json.JSONDecodeError as error:
        raise Invalid(f"inputs must be a JSON list of rows, e.g. [[0.1, 0.2]]: {error}") from error
    except RecursionError as error:
        raise Invalid("inputs are nested too deeply: send a list of rows, e.g. [[0.1, 0.2]]") from error
    if not isinstance(inputs, list):
        raise Invalid("inputs must be a JSON list of rows, e.g. [[0.1, 0.2]]")
    if len(inputs) > QUERY_ROWS:
        raise Invalid(f"a GET takes at most {QUERY_ROWS} rows ({len(inputs)} given): POST more")
    return parse_inline(inputs, None).x


def inputs_from_npy(*, body: bytes, max_rows: int) -> np.ndarray:
    if not body:
        raise Invalid("the request body is empty: send a .npy array (np.save) of shape [n, *input_shape]")
    check_npy_size(body)
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise Invalid(f"the body is not a readable .npy array (pickled arrays are refused): {error}") from error
    if not isinstance(array, np.ndarray):
        raise Invalid("the body must be a single .npy array, not an .npz archive")
    if array.ndim >= 1 and array.shape[0] > max_rows:
        raise TooLarge(f"{array.shape[0]} rows in one request, more than LIFELONG_MAX_PREDICT_ROWS = {max_rows}")
    return check_arrays(array, None, source="inputs").x
