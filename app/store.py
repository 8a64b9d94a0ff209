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
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from app.settings import Settings

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A trash entry: <blob name>.<when it was trashed, Unix ms>.<random>; every move to the trash makes a
# new entry, so a purge deletes exactly the entry it listed and never a copy trashed after it.
_TRASH_ENTRY = re.compile(r"^([0-9a-f]{64})\.(\d+)\.([0-9a-f]{8})$")
# Protocols whose single PUT is atomic: readers see the whole object or none, so no temporary name.
_ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oci", "oss"}


@dataclass(frozen=True)
class BlobInfo:
    """One stored blob, as the garbage collector sees it: when it was last written (or re-put)."""

    name: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class TrashEntry:
    """One blob moved to the trash, at `trashed_at`; `entry` is its own file name there."""

    name: str
    entry: str
    size: int
    trashed_at: datetime


class BlobNotFound(LookupError):
    """A database row names a blob that is not in the store (deleted by hand, or a different blob_dir/url)."""


def check_name(name: str) -> str:
    if not _SHA256.match(name):
        raise ValueError(f"not a blob name: {name!r}")
    return name


class BlobStore(ABC):
    """The store the services see; `path()` is not part of it, since an S3 blob has no local path.

    Besides its blobs a store has a trash, where the garbage collector (app/blobs/collect.py) moves
    a blob that nothing names, to delete it in a later collection. Reading a blob that is in the
    trash brings it back, so a row committed while its blob was being moved away still reads it.
    The trash is written once here, over four primitives each store has: move, delete, exists and
    list, on paths relative to the store's root.
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

    def exists(self, name: str) -> bool:
        return self._has(self._relative(name))

    def delete(self, name: str) -> None:
        self._remove(self._relative(name))

    @abstractmethod
    def listing(self) -> Iterator[BlobInfo]:
        """Every blob in the store (not the trash, not temporary files of writes in progress)."""

    @abstractmethod
    def remove_stale_temporaries(self, older_than: datetime) -> int:
        """Delete temporary files that writers left (crashed mid-write) before `older_than`; how many."""

    @abstractmethod
    def _move(self, source: str, target: str) -> None:
        """Move one relative path onto another (replacing it); FileNotFoundError if the source is gone."""

    @abstractmethod
    def _remove(self, relative: str) -> None:
        """Delete one relative path; nothing if it is gone already."""

    @abstractmethod
    def _has(self, relative: str) -> bool: ...

    @abstractmethod
    def _files(self, folder: str, pattern: str) -> list[tuple[str, int]]:
        """(file name, size) of the files in a relative folder whose names match a glob pattern."""

    @staticmethod
    def _relative(name: str) -> str:
        # Two-level fan-out keeps folders small when there are many versions.
        return f"{check_name(name)[:2]}/{name}"

    def to_trash(self, name: str) -> None:
        """Move the blob into a new trash entry (nothing if it is gone)."""
        entry = f"{name}.{int(time.time() * 1000)}.{uuid.uuid4().hex[:8]}"
        with contextlib.suppress(FileNotFoundError):
            self._move(self._relative(name), f"trash/{entry}")

    def trash(self) -> Iterator[TrashEntry]:
        for entry, size in self._files("trash", "*"):
            match = _TRASH_ENTRY.match(entry)
            if match:
                trashed_at = datetime.fromtimestamp(int(match[2]) / 1000, UTC)
                yield TrashEntry(match[1], entry, size, trashed_at)

    def restore(self, name: str) -> bool:
        """Make sure the blob is in place: if it is not, move one of its trash entries back.
        False when it is neither in place nor in the trash. Trash entries are only ever deleted by
        `purge`, never here: two processes restoring at once each move their own entry, or find
        the blob back in place."""
        relative = self._relative(name)
        if self._has(relative):
            return True
        for entry, _ in self._files("trash", f"{name}.*"):
            with contextlib.suppress(FileNotFoundError):  # another process took this entry first
                self._move(f"trash/{entry}", relative)
                return True
        return self._has(relative)

    def purge(self, entry: TrashEntry) -> None:
        """Delete that one trash entry."""
        self._remove(f"trash/{entry.entry}")

    def local_path(self, name: str) -> Path | None:
        """The blob's file on this host, for serving it without reading it into memory; None if remote."""
        check_name(name)
        return None


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.root / self._relative(name)

    def local_path(self, name: str) -> Path:
        if not self.restore(name):
            raise BlobNotFound(f"blob {name} is missing from {self.root}")
        return self.path(name)

    def put(self, data: bytes) -> str:
        name = hashlib.sha256(data).hexdigest()
        target = self.path(name)
        try:
            # Written again, as far as the garbage collector is concerned: a fresh time keeps a blob
            # that a row is about to name out of the next collection.
            os.utime(target)
            return name
        except FileNotFoundError:  # not there (or just moved to the trash): write it
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, data)
        return name

    def _read(self, name: str) -> bytes:
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError as missing:
            raise BlobNotFound(f"blob {name} is missing from {self.root}") from missing

    def listing(self) -> Iterator[BlobInfo]:
        for path in self.root.glob("??/*"):
            if _SHA256.match(path.name):
                with contextlib.suppress(FileNotFoundError):  # gone since the glob
                    stat = path.stat()
                    yield BlobInfo(path.name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))

    def remove_stale_temporaries(self, older_than: datetime) -> int:
        removed = 0
        for path in self.root.glob("??/.incoming-*"):
            with contextlib.suppress(FileNotFoundError):
                if datetime.fromtimestamp(path.stat().st_mtime, UTC) < older_than:
                    path.unlink()
                    removed += 1
        return removed

    def _move(self, source: str, target: str) -> None:
        destination = self.root / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.root / source, destination)
        fsync_directory(destination.parent)

    def _remove(self, relative: str) -> None:
        (self.root / relative).unlink(missing_ok=True)

    def _has(self, relative: str) -> bool:
        return (self.root / relative).exists()

    def _files(self, folder: str, pattern: str) -> list[tuple[str, int]]:
        found = []
        for path in (self.root / folder).glob(pattern):
            with contextlib.suppress(FileNotFoundError):
                found.append((path.name, path.stat().st_size))
        return found


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
        return f"{self.root}/{self._relative(name)}"

    def put(self, data: bytes) -> str:
        """Written even when it exists: same bytes, and a fresh modification time for the garbage
        collector (see LocalBlobStore.put), with no window in which the blob could be half there."""
        name = hashlib.sha256(data).hexdigest()
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

    def _read(self, name: str) -> bytes:
        key = self.key(name)
        with self._storage_errors("reading from"):
            try:
                return self.fs.cat_file(key)
            except FileNotFoundError as missing:
                raise BlobNotFound(f"blob {name} is missing from {self.url}") from missing

    def listing(self) -> Iterator[BlobInfo]:
        for key, info in self._find().items():
            folder, _, name = key.rpartition("/")
            if _SHA256.match(name) and len(folder.rpartition("/")[2]) == 2:
                yield BlobInfo(name, int(info.get("size") or 0), _modified(info))

    def remove_stale_temporaries(self, older_than: datetime) -> int:
        stale = [key for key, info in self._find().items()
                 if key.rpartition("/")[2].startswith(".incoming-") and _modified(info) < older_than]
        for key in stale:
            with self._storage_errors("deleting from"), contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(key)
        return len(stale)

    def _find(self) -> dict[str, dict[str, Any]]:
        with self._storage_errors("listing"):
            self.fs.invalidate_cache(self.root)
            return self.fs.find(self.root, detail=True) if self.fs.exists(self.root) else {}

    def _move(self, source: str, target: str) -> None:
        # On object stores a move is a copy then a delete: a copy exists at every moment.
        with self._storage_errors("moving within"):
            if not self.atomic_put:  # object stores have no folders to make
                self.fs.makedirs(f"{self.root}/{target.rpartition('/')[0]}", exist_ok=True)
            self.fs.mv(f"{self.root}/{source}", f"{self.root}/{target}")

    def _remove(self, relative: str) -> None:
        with self._storage_errors("deleting from"), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(f"{self.root}/{relative}")

    def _has(self, relative: str) -> bool:
        key = f"{self.root}/{relative}"
        with self._storage_errors("reading from"):
            # A listing cached in this process may predate another process's write.
            self.fs.invalidate_cache(key.rpartition("/")[0])
            return self.fs.exists(key)

    def _files(self, folder: str, pattern: str) -> list[tuple[str, int]]:
        with self._storage_errors("listing"):
            self.fs.invalidate_cache(f"{self.root}/{folder}")
            found = self.fs.glob(f"{self.root}/{folder}/{pattern}", detail=True)
        return [(key.rpartition("/")[2], int(info.get("size") or 0)) for key, info in found.items()]

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


def write_atomically(target: Path, data: bytes, publish: Callable[[str, str], None] = os.replace) -> None:
    """Write `data` under a temporary `.incoming-` name beside `target`, fsync it, then `publish` it
    under the real name (a rename): a reader of that name sees the whole file or none, even after a
    crash, which removes the temporary file or leaves it for `remove_stale_temporaries`."""
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        publish(temporary, str(target))
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)


def fsync_directory(directory: Path) -> None:
    # A rename is only durable once the directory entry itself is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
