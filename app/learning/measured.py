"""What a job says about how its Ω was measured: the parameters that no exact rule covered."""

from __future__ import annotations

import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)


def log_fallback(fallback: Sequence[str], job_id: str) -> None:
    """Parameters that no exact per-sample rule covered went through vmap over grad, which is exact but
    slow: the job's log names them so that a slow layer is visible."""
    if fallback:
        log.warning("job %s: Ω of %d parameter(s) measured by vmap over grad (no exact rule for their layer): %s",
                    job_id, len(fallback), ", ".join(fallback[:20]))
