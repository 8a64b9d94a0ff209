"""A drift job: the batch's trunk features at the version, tested against every task's reference, kept."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.architectures.spec import stored_spec
from app.datasets.inputs import load_inputs
from app.db.lookups import get_version
from app.db.tables import Dataset, Job, Model
from app.drift.schemas import DriftJobRequest
from app.drift.service import model_alpha, record_report, test_batch
from app.jobs.context import JobContext
from app.jobs.kinds import JobResult, PlannedWork, RecordResult
from app.jobs.spec import JobSpec
from app.jobs.watch import JobWatch
from app.mas.class_statistics import features
from app.models.networks import version_network


def drift_version(ctx: JobContext, job: JobSpec, request: DriftJobRequest, watch: JobWatch) -> RecordResult:
    with ctx.sessions() as session:
        model = session.get(Model, job.model_id)
        version = get_version(session, model, job.base_version)
        dataset = session.get(Dataset, request.dataset)
        alpha = model_alpha(model)
    architecture = stored_spec(model.architecture)
    net = version_network(ctx.store, architecture, version).to(ctx.device)
    inputs, _ = load_inputs(ctx.store, architecture, dataset, net.input_spec)
    batch = features(net, inputs.to(ctx.device)).cpu()
    watch.progress(len(batch), len(batch), None, unit="samples")
    report = test_batch(store=ctx.store, entries=version.class_statistics or [], batch=batch, alpha=alpha,
                        permutations=ctx.settings.drift_permutations, seed=model.seed)

    def record(session: Session) -> JobResult:
        record_report(session=session, model_id=job.model_id, version=version.number, job_id=job.id, source="drift",
                      report=report)
        return JobResult(version.number, details={key: report[key] for key in DETAILS})

    return record


DETAILS = ("tasks", "nearest_task", "alpha", "n", "drift")  # of the report, kept in the job's row


def planned_samples(session: Session, job: Job, request: DriftJobRequest) -> PlannedWork | None:
    """The batch's samples, as the job's claim writes progress 0 of them."""
    dataset = session.get(Dataset, request.dataset)
    return None if dataset is None else PlannedWork(dataset.n, "samples")
