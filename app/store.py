"""Content-addressed blob store: θ, Ω_frozen, Ω_open and datasets as blobs named by their sha256.

Equal bytes get one blob, so a version that only refreshes importance shares its parent's θ for
free. Services type against `BlobStore` (put, get, exists, delete) and `open_blob_store(settings)`
picks where blobs live; both stores use the same names and a two-level fan-out (`ab/abcd…`), and
validate a name as 64 hex digits before it touches a path, so a name can never escape the root.

What each store guarantees about half-written blobs, which is what lets a crashed writer or a
killed worker never corrupt a version:
- `LocalBlobStore` (a directory, the default): a blob is written to a temporary name, fsynced and
  renamed into place, so a crash never leaves a half-written file under a real name.
- `FsspecBlobStore` (any fsspec URL, `LIFELONG_BLOB_URL`): on object stores (s3, gs, az…) a blob is
  one PUT (or one multipart upload, completed in one call), which the store makes visible whole or
  not at all; on other filesystems it is a temporary name then a move, as safe as that
  filesystem's move (a rename on local disks and NFS; a copy on some others, which is not).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from app.settings import Settings

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Protocols whose single PUT is atomic: readers see the whole object or none, so no temporary name.
_ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oci", "oss"}


class BlobNotFound(LookupError):
    """A database row names a blob that is not in the store (deleted by hand, or a different blob_dir/url)."""


def check_name(name: str) -> str:
    if not _SHA256.match(name):
        raise ValueError(f"not a blob name: {name!r}")
    return name


class BlobStore(ABC):
    """The store the services see; `path()` is not part of it, since an S3 blob has no local path."""

    @abstractmethod
    def put(self, data: bytes) -> str: ...

    @abstractmethod
    def get(self, name: str) -> bytes: ...

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def delete(self, name: str) -> None: ...

    def local_path(self, name: str) -> Path | None:
        """The blob's file on this host, for serving it without reading it into memory; None if remote."""
        check_name(name)
        return None


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        # Two-level fan-out keeps directories small when there are many versions.
        return self.root / check_name(name)[:2] / name

    def local_path(self, name: str) -> Path:
        return self.path(name)

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
        fsync_directory(target.parent)
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


class FsspecBlobStore(BlobStore):
    """Blobs under any fsspec URL, so that an API and workers on other hosts share them."""

    def __init__(self, url: str, options: dict[str, Any] | None = None):
        self.url = url
        self.fs, root = url_to_fs(url, **(options or {}))
        self.root = root.rstrip("/")
        protocols = {self.fs.protocol} if isinstance(self.fs.protocol, str) else set(self.fs.protocol)
        self.atomic_put = bool(protocols & _ATOMIC_PUT)
        if not self.atomic_put:
            # Object stores have no directories (and makedirs on a bucket URL would create a bucket).
            self.fs.makedirs(self.root, exist_ok=True)

    def key(self, name: str) -> str:
        return f"{self.root}/{check_name(name)[:2]}/{name}"

    def put(self, data: bytes) -> str:
        name = hashlib.sha256(data).hexdigest()
        if self.exists(name):
            return name
        key = self.key(name)
        with self._storage_errors("writing to"):
            if self.atomic_put:
                self.fs.pipe_file(key, data)
            else:
                self._put_by_move(key, data)
        return name

    def _put_by_move(self, key: str, data: bytes) -> None:
        parent = key.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        temporary = f"{parent}/.incoming-{uuid.uuid4().hex}"
        local = isinstance(self.fs, LocalFileSystem)
        try:
            with self.fs.open(temporary, "wb") as handle:
                handle.write(data)
                if local:
                    handle.flush()
                    os.fsync(handle.fileno())
            self.fs.mv(temporary, key)
        except BaseException:
            with contextlib.suppress(OSError):
                self.fs.rm_file(temporary)
            raise
        if local:
            fsync_directory(Path(parent))

    def get(self, name: str) -> bytes:
        key = self.key(name)
        with self._storage_errors("reading from"):
            try:
                return self.fs.cat_file(key)
            except FileNotFoundError as missing:
                raise BlobNotFound(f"blob {name} is missing from {self.url}") from missing

    def exists(self, name: str) -> bool:
        key = self.key(name)
        with self._storage_errors("reading from"):
            # A listing cached in this process may predate another process's put.
            self.fs.invalidate_cache(key.rsplit("/", 1)[0])
            return self.fs.exists(key)

    def delete(self, name: str) -> None:
        key = self.key(name)
        with self._storage_errors("deleting from"), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(key)

    @contextlib.contextmanager
    def _storage_errors(self, action: str) -> Iterator[None]:
        # s3fs lets botocore's transport errors through as they are; the API (503) and the jobs
        # (error type "storage") treat OSError as "storage unavailable", as for a full local disk.
        try:
            yield
        except (OSError, BlobNotFound):
            raise
        except Exception as error:
            raise OSError(errno.EIO, f"{action} {self.url} failed: {error}") from error


def open_blob_store(settings: Settings) -> BlobStore:
    if settings.blob_url:
        return FsspecBlobStore(settings.blob_url, settings.blob_options)
    return LocalBlobStore(settings.resolved_blob_dir)


def fsync_directory(directory: Path) -> None:
    # A rename is only durable once the directory entry itself is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
