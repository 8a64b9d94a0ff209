"""An importance measurement as a job keeps it: on the CPU, and its slow layers said in the job's log."""

from __future__ import annotations

import logging

from app.mas.devices import to_cpu
from app.mas.importance import ImportanceSum

log = logging.getLogger(__name__)


def kept_measurement(measured: ImportanceSum, job_id: str) -> ImportanceSum:
    """The sums moved to the CPU (what is stored); parameters that no exact per-sample rule covered went
    through vmap over grad, which is exact but slow: the log names them so a slow layer is visible."""
    if measured.fallback:
        log.warning("job %s: Ω of %d parameter(s) measured by vmap over grad (no exact rule for their layer): %s",
                    job_id, len(measured.fallback), ", ".join(measured.fallback[:20]))
    return ImportanceSum(to_cpu(measured.sums), measured.n, fallback=measured.fallback)
