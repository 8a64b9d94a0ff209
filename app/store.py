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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from app.settings import Settings

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Protocols whose single PUT is atomic: readers see the whole object or none, so no temporary name.
_ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oci", "oss"}


@dataclass(frozen=True)
class BlobInfo:
    """One stored blob, as the garbage collector sees it: when it was last written (or re-put)."""

    name: str
    size: int
    modified: datetime


class BlobNotFound(LookupError):
    """A database row names a blob that is not in the store (deleted by hand, or a different blob_dir/url)."""


def check_name(name: str) -> str:
    if not _SHA256.match(name):
        raise ValueError(f"not a blob name: {name!r}")
    return name


class BlobStore(ABC):
    """The store the services see; `path()` is not part of it, since an S3 blob has no local path.

    Besides its blobs a store has a trash, where the garbage collector (app/blobs/collect.py) moves
    a blob that nothing names before deleting it in a later collection. Reading a blob that is in the
    trash brings it back: a row committed while its blob was being moved away still reads it.
    """

    def get(self, name: str) -> bytes:
        try:
            return self._read(name)
        except BlobNotFound:
            if not self.restore(name):
                raise
            return self._read(name)

    @abstractmethod
    def put(self, data: bytes) -> str: ...

    @abstractmethod
    def _read(self, name: str) -> bytes: ...

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def delete(self, name: str) -> None: ...

    @abstractmethod
    def listing(self, *, trash: bool = False) -> Iterator[BlobInfo]:
        """Every blob in the store, or in its trash (temporary files of writes in progress are neither)."""

    @abstractmethod
    def to_trash(self, name: str) -> None:
        """Move the blob to the trash; its modification time there is the time it was moved."""

    @abstractmethod
    def restore(self, name: str) -> bool:
        """Bring the blob back from the trash (or drop the trash copy if the blob was put again);
        False when the trash does not have it."""

    @abstractmethod
    def purge(self, name: str) -> None:
        """Delete the blob's copy in the trash."""

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

    def trash_path(self, name: str) -> Path:
        return self.root / "trash" / check_name(name)

    def local_path(self, name: str) -> Path:
        path = self.path(name)
        if not path.exists():
            self.restore(name)
        return path

    def put(self, data: bytes) -> str:
        name = hashlib.sha256(data).hexdigest()
        target = self.path(name)
        if target.exists():
            # Written again, as far as the garbage collector is concerned: a row about to name this
            # blob must not lose it to a collection that found it unreferenced a moment ago.
            os.utime(target)
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

    def _read(self, name: str) -> bytes:
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError as missing:
            raise BlobNotFound(f"blob {name} is missing from {self.root}") from missing

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def listing(self, *, trash: bool = False) -> Iterator[BlobInfo]:
        for path in (self.root / "trash").glob("*") if trash else self.root.glob("??/*"):
            if _SHA256.match(path.name):
                with contextlib.suppress(FileNotFoundError):  # gone since the glob (collected, restored)
                    stat = path.stat()
                    yield BlobInfo(path.name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))

    def to_trash(self, name: str) -> None:
        trashed = self.trash_path(name)
        trashed.parent.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.path(name), trashed)
            os.utime(trashed)

    def restore(self, name: str) -> bool:
        trashed = self.trash_path(name)
        try:
            if self.path(name).exists():  # put again meanwhile: the trash copy is redundant
                trashed.unlink()
            else:
                self.path(name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(trashed, self.path(name))
        except FileNotFoundError:  # not in the trash (or another process restored it first)
            return self.path(name).exists()
        return True

    def purge(self, name: str) -> None:
        self.trash_path(name).unlink(missing_ok=True)


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
        """On object stores the blob is PUT even when it exists: same bytes, and a fresh modification
        time, which the garbage collector reads (see LocalBlobStore.put)."""
        name = hashlib.sha256(data).hexdigest()
        key = self.key(name)
        with self._storage_errors("writing to"):
            if self.atomic_put:
                self.fs.pipe_file(key, data)
            elif self.exists(name):
                self._touch(key, data)
            else:
                self._put_by_move(key, data)
        return name

    def _touch(self, key: str, data: bytes) -> None:
        try:
            self.fs.touch(key, truncate=False)
        except NotImplementedError:  # a filesystem that cannot touch: the same bytes moved into place again
            self._put_by_move(key, data)

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

    def trash_key(self, name: str) -> str:
        return f"{self.root}/trash/{check_name(name)}"

    def _read(self, name: str) -> bytes:
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

    def listing(self, *, trash: bool = False) -> Iterator[BlobInfo]:
        with self._storage_errors("listing"):
            self.fs.invalidate_cache(self.root)
            found = self.fs.find(self.root, detail=True) if self.fs.exists(self.root) else {}
        for key, info in found.items():
            folder, _, name = key.rpartition("/")
            in_trash = folder.endswith("/trash")
            if _SHA256.match(name) and in_trash == trash:
                yield BlobInfo(name, int(info.get("size") or 0), _modified(info))

    def to_trash(self, name: str) -> None:
        # On object stores a move is a copy then a delete: a copy exists at every moment, and the
        # copy's modification time is the time of the move.
        with self._storage_errors("moving to the trash of"):
            if not self.atomic_put:  # object stores have no folders to make
                self.fs.makedirs(f"{self.root}/trash", exist_ok=True)
            if not self.exists(name):
                return
            self.fs.mv(self.key(name), self.trash_key(name))
            if not self.atomic_put:
                with contextlib.suppress(NotImplementedError):  # then it keeps its old time
                    self.fs.touch(self.trash_key(name), truncate=False)

    def restore(self, name: str) -> bool:
        with self._storage_errors("restoring from the trash of"):
            self.fs.invalidate_cache(f"{self.root}/trash")
            if not self.fs.exists(self.trash_key(name)):
                return self.exists(name)
            try:
                if self.exists(name):
                    self.fs.rm_file(self.trash_key(name))
                else:
                    self.fs.mv(self.trash_key(name), self.key(name))
            except FileNotFoundError:  # another process restored it first
                return self.exists(name)
        return True

    def purge(self, name: str) -> None:
        with self._storage_errors("deleting from"), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.trash_key(name))

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


def _modified(info: dict[str, Any]) -> datetime:
    """The modification time in an fsspec listing entry, whose key differs by filesystem."""
    for key in ("LastModified", "mtime", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise OSError(errno.EIO, f"the blob store gives no modification time for {info.get('name')}")


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
