"""An importance job: measure Ω at the base's θ on new (unlabeled) inputs and update the open estimate.

`accumulate` adds the samples to the open running sum and count, `replace` restarts it from them
(MAS.md §4). The data is measured in chunks so that progress and cancellation are honoured between
them; since the open estimate is a sum with a count, chunking changes nothing but float rounding.
The new version shares θ with its base: same blob, same accuracy, same tasks.
"""

from __future__ import annotations

from torch import Tensor

from app.db.tables import Dataset, Job, Model
from app.jobs.service import succeed_job
from app.learning.context import JobContext
from app.learning.data import load_inputs
from app.learning.measured import kept_measurement
from app.learning.spec import JobSpec
from app.learning.watch import JobWatch
from app.mas.importance import estimate_importance
from app.mas.networks import network_state
from app.mas.training import TrainingCancelled
from app.models.networks import version_network
from app.versions.service import (
    get_version,
    importance_stats,
    load_importance,
    record_version,
    store_tensors,
)

CHUNK_ROWS = 2048  # a multiple of estimate_importance's chunk, so `batch` reduction matches one call
LAZY_CHUNK_ROWS = 256  # images decoded per step: one chunk of estimate_importance, bounded memory


def refresh_version(ctx: JobContext, job: JobSpec, watch: JobWatch) -> int:
    request = job.request
    with ctx.sessions() as session:
        model = session.get(Model, job.model_id)
        base = get_version(session, model, job.base_version)
        dataset = session.get(Dataset, request["dataset"])
    state = load_importance(ctx.store, base)
    learned = next((t for t in base.tasks if t["name"] == job.task), {})
    net = version_network(ctx.store, model.architecture, base, learned.get("trainable")).to(ctx.device)
    theta = network_state(net)
    inputs, _ = load_inputs(ctx.store, model.architecture, dataset, net.input_spec)  # labels play no part in Ω
    inputs = inputs.to(ctx.device)

    n = inputs.shape[0]
    rows = CHUNK_ROWS if isinstance(inputs, Tensor) else LAZY_CHUNK_ROWS
    for start in range(0, n, rows):
        if watch.should_stop():
            raise TrainingCancelled(f"stopped after {start} of {n} samples")
        measured = estimate_importance(
            net, job.task, inputs[start : start + rows],
            variant=request["variant"], output=request["output"], reduction=request["reduction"],
        )
        measured = kept_measurement(measured, job.id)
        fresh = start == 0 and request["mode"] == "replace"
        state = state.replace(measured) if fresh else state.accumulate(measured)
        watch.progress(min(start + rows, n), n, None, unit="samples")

    frozen_blob = store_tensors(ctx.store, state.frozen_tensors())
    open_blob = store_tensors(ctx.store, state.open_tensors())
    with ctx.sessions.begin() as session:
        if watch.cancelled_now(session):
            raise TrainingCancelled("cancelled before the version was written")
        version = record_version(
            session, model_id=job.model_id, job_id=job.id, base=job.base_version, kind="importance",
            task=job.task, theta_blob=base.theta_blob, theta_parts=base.theta_parts,
            omega_frozen_blob=frozen_blob, omega_open_blob=open_blob,
            n_open=state.n_open, tasks=list(base.tasks), accuracy=dict(base.accuracy),
            importance=importance_stats(theta, state.total()),
        )
        succeed_job(session.get(Job, job.id), version.number)
        return version.number
