"""One behaviour suite for every blob store: a local directory, an fsspec `file://` URL, and S3.

S3 is a real S3-compatible server (moto's server mode, a subprocess on loopback), reached through
s3fs over HTTP exactly as a deployment reaches MinIO or AWS; what is stored is read back with boto3,
independently of the store under test. A write cut in the middle is provoked for real: a file-size
limit (RLIMIT_FSIZE) in a child process for the disk stores, and a TCP proxy that drops the upload
halfway for S3.
"""

from __future__ import annotations

import errno
import hashlib
import json
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from safetensors.numpy import load as load_safetensors

from app.settings import Settings
from app.store import BlobNotFound, BlobStore, FsspecBlobStore, LocalBlobStore, open_blob_store
from scripts.cluster import start_s3
from tests.conftest import REPO

BUCKET = "lifelong-blobs"
BLOB = b"theta" * 1000


@dataclass
class S3Server:
    endpoint: str

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def options(self, endpoint: str | None = None, **extra: Any) -> dict[str, Any]:
        # moto accepts any credentials; explicit ones keep the host's AWS configuration out of the test.
        return {"endpoint_url": endpoint or self.endpoint, "key": "test", "secret": "test",
                "client_kwargs": {"region_name": "us-east-1"}, **extra}

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="test",
                            aws_secret_access_key="test", region_name="us-east-1")

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def keys(self, prefix: str) -> list[str]:
        listing = self.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/")
        return [item["Key"] for item in listing.get("Contents", [])]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = start_s3(bucket=BUCKET)  # moto's server mode, in its own process, with the bucket made
    yield S3Server(server.url)
    server.stop()


@dataclass
class Backend:
    """A fresh store of one kind, and the names of what it really holds, read without the store."""

    open: Callable[[], BlobStore]
    stored: Callable[[BlobStore], list[str]]


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


@pytest.fixture(params=["local", "file", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return Backend(lambda: LocalBlobStore(tmp_path / "blobs"), lambda store: _files(tmp_path / "blobs"))
    if request.param == "file":
        shared = tmp_path / "shared"
        return Backend(lambda: FsspecBlobStore(shared.as_uri() + "/blobs", {}), lambda store: _files(shared))
    s3: S3Server = request.getfixturevalue("s3")
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    return Backend(lambda: FsspecBlobStore(f"s3://{BUCKET}/{prefix}", s3.options()),
                   lambda store: sorted(key.rsplit("/", 1)[1] for key in s3.keys(prefix)))


def test_put_get_roundtrip_by_content_name(backend: Backend) -> None:
    store = backend.open()
    name = store.put(BLOB)
    assert name == hashlib.sha256(BLOB).hexdigest()
    assert store.get(name) == BLOB and store.exists(name)
    # Another instance over the same location (another process, another host) sees it too.
    assert backend.open().get(name) == BLOB


def test_same_bytes_are_stored_once(backend: Backend) -> None:
    store = backend.open()
    assert store.put(BLOB) == store.put(BLOB) == backend.open().put(BLOB)
    assert backend.stored(store) == [hashlib.sha256(BLOB).hexdigest()]


def test_missing_blob(backend: Backend) -> None:
    store = backend.open()
    assert not store.exists("0" * 64)
    with pytest.raises(BlobNotFound):
        store.get("0" * 64)


@pytest.mark.parametrize("name", ["../../etc/passwd", "a" * 63, "A" * 64, "/" + "a" * 63, "a" * 64 + "/.."])
def test_bad_names_are_refused_before_any_access(backend: Backend, name: str) -> None:
    store = backend.open()
    for use in (store.get, store.exists, store.delete, store.local_path):
        with pytest.raises(ValueError):
            use(name)


def test_delete(backend: Backend) -> None:
    store = backend.open()
    kept, dropped = store.put(b"kept"), store.put(b"dropped")
    store.delete(dropped)
    store.delete(dropped)  # deleting what is gone is no error: a cleanup may run twice
    assert not store.exists(dropped) and store.exists(kept)
    assert backend.stored(store) == [kept]
    with pytest.raises(BlobNotFound):
        store.get(dropped)


_PUT_UNDER_FILE_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
from app.store import FsspecBlobStore, LocalBlobStore
kind, where = sys.argv[1], sys.argv[2]
store = LocalBlobStore(Path(where)) if kind == "local" else FsspecBlobStore(where, {})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    store.put(bytes(range(256)) * 1024)
except OSError as error:
    sys.exit(error.errno)
"""


@pytest.mark.parametrize("kind", ["local", "file"])
def test_a_write_cut_midway_leaves_no_blob_on_disk(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "blobs"
    where = str(root) if kind == "local" else root.as_uri()
    cut = subprocess.run([sys.executable, "-c", _PUT_UNDER_FILE_SIZE_LIMIT, kind, where], cwd=REPO)
    assert cut.returncode == errno.EFBIG  # 4 KiB of the 256 KiB reached the disk, then the write failed
    name = hashlib.sha256(bytes(range(256)) * 1024).hexdigest()
    store = LocalBlobStore(root) if kind == "local" else FsspecBlobStore(where, {})
    assert not store.exists(name) and _files(root) == []  # no blob, and no temporary left behind
    with pytest.raises(BlobNotFound):
        store.get(name)


class CuttingProxy:
    """TCP to the S3 server that drops each connection after `budget` bytes from the client: an upload
    cut halfway through its body, as a network failure or a killed worker would."""

    def __init__(self, target_port: int, budget: int):
        self.target_port, self.budget = target_port, budget
        self.cut = 0  # connections dropped with their budget spent, so the failure was mid-request
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        threading.Thread(target=self._copy, args=(upstream, client), daemon=True).start()
        left = self.budget
        with client, upstream:
            while left > 0 and (chunk := client.recv(65536)):
                upstream.sendall(chunk[:left])
                left -= len(chunk)
            self.cut += left <= 0

    @staticmethod
    def _copy(source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


def test_an_s3_upload_cut_midway_leaves_no_object(s3: S3Server) -> None:
    prefix = f"cut-{uuid.uuid4().hex[:8]}"
    proxy = CuttingProxy(s3.port, budget=64 << 10)
    try:
        # Fewer retries: each is cut the same way, only slower.
        cut = FsspecBlobStore(f"s3://{BUCKET}/{prefix}", s3.options(f"http://127.0.0.1:{proxy.port}",
                                                                    config_kwargs={"retries": {"max_attempts": 1}}))
        cut.fs.retries = 1
        data = bytes(range(256)) * 4096
        with pytest.raises(OSError):  # botocore's transport error, as the services expect a storage failure
            cut.put(data)
        assert proxy.cut >= 1 and len(data) > 2 * proxy.budget
    finally:
        proxy.close()
    assert s3.keys(prefix) == []
    with pytest.raises(BlobNotFound):
        FsspecBlobStore(f"s3://{BUCKET}/{prefix}", s3.options()).get(hashlib.sha256(data).hexdigest())


def test_factory_picks_the_store_from_settings(tmp_path: Path, s3: S3Server) -> None:
    local = open_blob_store(Settings(var_dir=tmp_path / "var"))
    assert type(local) is LocalBlobStore and local.root == (tmp_path / "var" / "blobs").resolve()
    remote = open_blob_store(Settings(var_dir=tmp_path / "var", blob_url=f"s3://{BUCKET}/settings",
                                      blob_options=s3.options()))
    assert isinstance(remote, FsspecBlobStore) and remote.atomic_put
    assert remote.put(b"from settings") in {k.rsplit("/", 1)[1] for k in s3.keys("settings")}
    # The URL wins over blob_dir; a file:// URL is moved into place, not PUT.
    shared = open_blob_store(Settings(blob_dir=tmp_path / "unused", blob_url=(tmp_path / "shared").as_uri()))
    assert isinstance(shared, FsspecBlobStore) and not shared.atomic_put and not (tmp_path / "unused").exists()


def test_factory_reads_the_url_and_json_options_from_the_environment(monkeypatch, s3: S3Server) -> None:
    monkeypatch.setenv("LIFELONG_BLOB_URL", f"s3://{BUCKET}/from-env")
    monkeypatch.setenv("LIFELONG_BLOB_OPTIONS", json.dumps(s3.options()))
    store = open_blob_store(Settings())
    assert isinstance(store, FsspecBlobStore)
    name = store.put(b"from env")
    assert s3.read(f"from-env/{name[:2]}/{name}") == b"from env"


def test_a_service_on_s3_serves_checkpoints_and_importance(service_factory, api_factory, tmp_path: Path,
                                                          s3: S3Server) -> None:
    """The real API and worker with every blob on S3: the worker writes a version, the API serves it."""
    env = {"LIFELONG_BLOB_URL": f"s3://{BUCKET}/service", "LIFELONG_BLOB_OPTIONS": json.dumps(s3.options())}
    api = api_factory(service_factory(tmp_path / "var", env=env))
    model = api.create_model("s3")
    version = api.learn(model, api.digits[0], epochs=1)
    detail = api.get(f"/v1/models/{model}/versions/{version}")

    checkpoint = api.http.get(f"/v1/models/{model}/versions/{version}/checkpoint")
    assert checkpoint.status_code == 200, checkpoint.text
    assert checkpoint.headers["content-disposition"] == f'attachment; filename="{model}-v{version}.safetensors"'
    theta = detail["theta_sha256"]  # θ's manifest: its parts (trunk layers, head) are blobs of their own
    parts = json.loads(s3.read(f"service/{theta[:2]}/{theta}"))["parts"]
    from_parts = {}
    for blob in parts.values():
        from_parts.update(load_safetensors(s3.read(f"service/{blob[:2]}/{blob}")))
    served = load_safetensors(checkpoint.content)
    task_free = {name for name in served if name.startswith(("task_free.", "class_statistics."))}
    served = {name: tensor for name, tensor in served.items() if name not in task_free}  # θ is the rest
    assert task_free and all(s3.read(f"service/{b[:2]}/{b}") for b in [detail["task_free"]["blob"]])
    assert f"heads.{api.digits[0].name}.weight" in served and served.keys() == from_parts.keys()
    assert all((served[name] == from_parts[name]).all() for name in served)

    opened = api.http.get(f"/v1/models/{model}/versions/{version}/importance", params={"part": "open"})
    assert opened.status_code == 200 and opened.headers["x-lifelong-n-open"] == str(detail["importance"]["n_open"])
    last_task = list(detail["importance"]["tasks"])[-1]
    assert hashlib.sha256(opened.content).hexdigest() == detail["importance"]["tasks"][last_task]["sha256"]
    assert not (tmp_path / "var" / "blobs").exists()
