"""Faults injected on purpose, for the fault tests only, named in `LIFELONG_INJECT_FAULTS` (comma-separated).

`store_write`: every blob write of a worker fails as a full disk would (ENOSPC), which must fail the
job cleanly (`error.type` "storage") and leave the API answering. `slow_predictions`: every look of a
prediction at its deadline (between slices of 256 rows) waits 0.5 s, so that the tests of deadlines,
disconnects and load shedding do not depend on how fast this machine computes. Nothing here is active
by default.
"""

from __future__ import annotations

import errno
import os

from app.settings import Settings
from app.store import BlobStore, LocalBlobStore, open_blob_store


class FullDiskBlobStore(LocalBlobStore):
    def put(self, data: bytes) -> str:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.root))


def injected(settings: Settings) -> set[str]:
    return {name.strip() for name in settings.inject_faults.split(",") if name.strip()}


def worker_store(settings: Settings) -> BlobStore:
    if "store_write" in injected(settings):
        return FullDiskBlobStore(settings.resolved_blob_dir)
    return open_blob_store(settings)
