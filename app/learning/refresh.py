"""An importance job: measure Ω at the base's θ on new (unlabeled) inputs, for one task's estimate.

The request names a task (default the last learned); `accumulate` adds the samples to that task's
running sum and count, `replace` restarts its estimate from them (MAS.md §4). Every other task's
estimate is carried over untouched. The data is measured in chunks so that progress and cancellation
are honoured between them; since an estimate is a sum with a count, chunking changes nothing but
float rounding. The new version shares θ with its base: same blob, same accuracy, same tasks.
"""

from __future__ import annotations

from sqlalchemy.orm import Session
from torch import Tensor

from app.architectures.spec import stored_spec
from app.datasets.inputs import load_inputs
from app.db.lookups import get_version
from app.db.tables import Dataset, Job, Model
from app.drift.service import has_references, model_alpha, record_report, test_batch
from app.jobs.context import JobContext
from app.jobs.kinds import JobResult, PlannedWork, RecordResult
from app.jobs.spec import JobSpec
from app.jobs.watch import JobWatch
from app.learning.job_requests import ImportanceJobRequest
from app.learning.measured import log_fallback
from app.learning.provenance import made_by
from app.mas.accumulation import TaskImportance
from app.mas.class_statistics import features
from app.mas.devices import to_cpu
from app.mas.importance import ImportanceSum, estimate_importance
from app.mas.networks import network_state
from app.mas.training import TrainingCancelled
from app.models.networks import version_network
from app.versions.importance import importance_stats, load_task, load_total, with_task
from app.versions.service import record_version

CHUNK_ROWS = 2048  # a multiple of estimate_importance's chunk, so `batch` reduction matches one call
LAZY_CHUNK_ROWS = 256  # images decoded per step: one chunk of estimate_importance, bounded memory


def refresh_version(ctx: JobContext, job: JobSpec, request: ImportanceJobRequest,
                    watch: JobWatch) -> RecordResult:
    with ctx.sessions() as session:
        model = session.get(Model, job.model_id)
        base = get_version(session, model, job.base_version)
        dataset = session.get(Dataset, request.dataset)
    replace = request.mode == "replace"
    estimate = TaskImportance() if replace else load_task(ctx.store, base.importance_parts, job.task)
    learned = next((t for t in base.tasks if t["name"] == job.task), {})
    architecture = stored_spec(model.architecture)
    net = version_network(ctx.store, architecture, base, learned.get("trainable")).to(ctx.device)
    theta = network_state(net)
    inputs, _ = load_inputs(ctx.store, architecture, dataset, net.input_spec)  # labels play no part in Ω
    inputs = inputs.to(ctx.device)

    n, fallback = inputs.shape[0], ()
    rows = CHUNK_ROWS if isinstance(inputs, Tensor) else LAZY_CHUNK_ROWS
    for start in range(0, n, rows):
        if watch.should_stop():
            raise TrainingCancelled(f"stopped after {start} of {n} samples")
        measured = estimate_importance(
            net, job.task, inputs[start : start + rows],
            variant=request.variant, output=request.output, reduction=request.reduction,
        )
        fallback = (*fallback, *measured.fallback)
        estimate = estimate.accumulate(ImportanceSum(to_cpu(measured.sums), measured.n))
        watch.progress(min(start + rows, n), n, None, unit="samples")
    log_fallback(tuple(dict.fromkeys(fallback)), job.id)

    parts = with_task(ctx.store, base.importance_parts, job.task, estimate, "mas")
    omega = load_total(ctx.store, parts)
    report = None
    if has_references(base) and n >= 2:  # the batch is deployment data: test it for drift on the way
        report = test_batch(store=ctx.store, entries=base.class_statistics or [], batch=features(net, inputs).cpu(),
                            alpha=model_alpha(model), permutations=ctx.settings.drift_permutations, seed=model.seed)

    def record(session: Session) -> JobResult:
        recorded = record_version(
            session=session, model_id=job.model_id, job_id=job.id, base=job.base_version, kind="importance",
            task=job.task, theta_blob=base.theta_blob, theta_parts=base.theta_parts, importance_parts=parts,
            tasks=list(base.tasks), accuracy=dict(base.accuracy), importance=importance_stats(theta, omega),
            made_by=made_by(session.get(Job, job.id), precision="fp32", samples=n),
            class_statistics=base.class_statistics, task_free=base.task_free,  # θ is unchanged: so are they
        )
        if report is not None:
            record_report(session=session, model_id=job.model_id, version=job.base_version, job_id=job.id,
                          source="importance", report=report)
        return JobResult(recorded.version.number, recorded.promotion)

    return record

def planned_samples(session: Session, job: Job, request: ImportanceJobRequest) -> PlannedWork | None:
    """The samples the job measures Ω on, as its claim writes progress 0 of them."""
    dataset = session.get(Dataset, request.dataset)
    return None if dataset is None else PlannedWork(dataset.n, "samples")
