"""A running job's two lines to its row: progress out (rate-limited) and cancellation in (rate-limited).

The training loop calls both every step; a step can take microseconds, so each writes or reads the
database at most every `progress_interval_s` / `cancel_poll_s` seconds (the last step is always
written). A worker that is shutting down counts as a cancellation request, checked on every call.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from app.jobs.service import is_cancel_requested, record_progress


class JobWatch:
    def __init__(self, sessions: sessionmaker[Session], job_id: str, *, progress_interval_s: float,
                 cancel_poll_s: float, shutting_down: Callable[[], bool]):
        self.sessions, self.job_id = sessions, job_id
        self.progress_interval_s, self.cancel_poll_s = progress_interval_s, cancel_poll_s
        self.shutting_down = shutting_down
        self._last_write = self._last_poll = float("-inf")
        self._cancelled = False

    def progress(self, done: int, total: int, loss: float | None, unit: str = "steps",
                 detail: dict[str, int] | None = None) -> None:
        now = time.monotonic()
        if done < total and now - self._last_write < self.progress_interval_s:
            return
        self._last_write = now
        with self.sessions.begin() as session:
            record_progress(session=session, job_id=self.job_id, done=done, total=total, unit=unit, loss=loss,
                            detail=detail)

    def should_stop(self) -> bool:
        if self._cancelled or self.shutting_down():
            return True
        now = time.monotonic()
        if now - self._last_poll >= self.cancel_poll_s:
            self._last_poll = now
            with self.sessions() as session:
                self._cancelled = is_cancel_requested(session=session, job_id=self.job_id)
        return self._cancelled

    def cancelled_now(self, session: Session) -> bool:
        """The flag as of this transaction: the last check before a version is written."""
        return self.shutting_down() or is_cancel_requested(session=session, job_id=self.job_id)
