"""The precision a job reports follows its device: bf16 autocast for training on CUDA, fp32 otherwise."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.db.tables import Job
from app.jobs.schemas import JobOut


@pytest.mark.parametrize(("kind", "device", "expected"), [
    ("train", None, None), ("train", "cpu", "fp32"), ("train", "cuda:0", "bf16"), ("train", "mps", "fp32"),
    ("importance", "cuda:0", "fp32"),
])
def test_a_job_reports_the_precision_its_code_chose(kind: str, device: str | None, expected: str | None) -> None:
    job = Job(id="j", kind=kind, model_id=1, state="running", task="t", base_version=0, request={}, attempts=1,
              cancel_requested=False, queue="gpu", device=device, created_at=datetime.now(UTC))
    assert JobOut.of(job, "m").precision == expected
