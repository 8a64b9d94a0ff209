"""Predict with a stored version: resolve model, version and task, fit the inputs, run the network.

The database is only read to find the version; its transaction ends before the network runs, so a
prediction never holds a lock that a worker writing progress would wait on.
"""

from __future__ import annotations

import io
import json

import numpy as np
import torch
from sqlalchemy.orm import Session

from app.datasets.parsing import check_arrays, parse_inline
from app.datasets.service import fit_inputs
from app.errors import Invalid, NotFound, TooLarge
from app.mas import evaluation
from app.mas.networks import load_network
from app.metrics import count_prediction
from app.models.service import get_model
from app.predictions.cache import NetworkCache
from app.predictions.schemas import PredictOut
from app.store import BlobStore
from app.versions.service import get_version, load_theta

QUERY_ROWS = 100  # the API's limit for inputs carried in a GET's query string


def predict(session: Session, store: BlobStore, cache: NetworkCache, *, model_name: str, task: str,
            version: int | None, inputs: np.ndarray, probabilities: bool) -> PredictOut:
    model = get_model(session, model_name)
    stored = get_version(session, model, model.head if version is None else version)
    tasks = [t["name"] for t in stored.tasks]
    if task not in tasks:
        raise NotFound(f"version {stored.number} of model {model.name!r} has no task {task!r} (it has {tasks})")
    architecture, number = model.architecture, stored.number
    session.rollback()
    x = fit_inputs(inputs, architecture["input_shape"], "inputs")
    key = (json.dumps(architecture, sort_keys=True), stored.theta_blob)
    net = cache.get(key, lambda: load_network(architecture, load_theta(store, stored)))
    classes, probs = evaluation.predict(net, task, torch.from_numpy(x))
    count_prediction(model.name, len(x))
    return PredictOut(model=model.name, version=number, task=task, predictions=classes.tolist(),
                      probabilities=probs.tolist() if probabilities else None)


def inputs_from_json(inputs: list, max_rows: int) -> np.ndarray:
    if len(inputs) > max_rows:
        raise TooLarge(f"{len(inputs)} rows in one request, more than LIFELONG_MAX_PREDICT_ROWS = {max_rows}")
    return parse_inline(inputs, None).x


def inputs_from_query(text: str) -> np.ndarray:
    try:
        inputs = json.loads(text)
    except json.JSONDecodeError as error:
        raise Invalid(f"inputs must be a JSON list of rows, e.g. [[0.1, 0.2]]: {error}") from error
    if not isinstance(inputs, list):
        raise Invalid("inputs must be a JSON list of rows, e.g. [[0.1, 0.2]]")
    if len(inputs) > QUERY_ROWS:
        raise Invalid(f"a GET takes at most {QUERY_ROWS} rows ({len(inputs)} given): POST more")
    return parse_inline(inputs, None).x


def inputs_from_npy(body: bytes, max_rows: int) -> np.ndarray:
    if not body:
        raise Invalid("the request body is empty: send a .npy array (np.save) of shape [n, *input_shape]")
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise Invalid(f"the body is not a readable .npy array (pickled arrays are refused): {error}") from error
    if not isinstance(array, np.ndarray):
        raise Invalid("the body must be a single .npy array, not an .npz archive")
    if array.ndim >= 1 and array.shape[0] > max_rows:
        raise TooLarge(f"{array.shape[0]} rows in one request, more than LIFELONG_MAX_PREDICT_ROWS = {max_rows}")
    return check_arrays(array, None, source="inputs").x
