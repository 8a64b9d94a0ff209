"""Content-addressed blob store: θ, Ω_frozen, Ω_open and datasets as files named by their sha256.

Equal bytes get one file, so a version that only refreshes importance shares its parent's θ for
free. A blob is written to a temporary name, fsynced and renamed into place, so a crash never
leaves a half-written file under a real name; readers only ever see complete blobs. Names are
validated as 64 hex digits before they touch a path, so a name can never escape the directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BlobNotFound(LookupError):
    """A database row names a blob that is not on disk (deleted by hand, or a different blob_dir)."""


class BlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        if not _SHA256.match(name):
            raise ValueError(f"not a blob name: {name!r}")
        # Two-level fan-out keeps directories small when there are many versions.
        return self.root / name[:2] / name

    def put(self, data: bytes) -> str:
        name = hashlib.sha256(data).hexdigest()
        target = self.path(name)
        if target.exists():
            return name
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._fsync_directory(target.parent)
        return name

    def get(self, name: str) -> bytes:
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError as missing:
            raise BlobNotFound(f"blob {name} is missing from {self.root}") from missing

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    @staticmethod
    def _fsync_directory(directory: Path) -> None:
        # The rename is only durable once the directory entry itself is on disk.
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
