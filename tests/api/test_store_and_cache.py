"""The two in-process parts under the API: the content-addressed blob store and the prediction cache."""

from __future__ import annotations

import hashlib

import pytest

from app.mas.networks import build_network
from app.predictions.cache import NetworkCache, network_bytes
from app.store import BlobNotFound, LocalBlobStore


def test_blobs_are_named_by_content_and_stored_once(tmp_path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    name = store.put(b"theta")
    assert name == hashlib.sha256(b"theta").hexdigest()
    assert store.put(b"theta") == name and store.get(name) == b"theta"
    assert [p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == [name]
    with pytest.raises(BlobNotFound):
        store.get("0" * 64)


def test_prediction_cache_is_lru_bounded_in_bytes() -> None:
    architecture = {"kind": "mlp", "input_shape": [8], "hidden": [16]}
    size = network_bytes(build_network(architecture, 0))
    cache = NetworkCache(max_bytes=2 * size)
    loads: list[str] = []

    def loader(key: str):
        return lambda: loads.append(key) or build_network(architecture, 0)

    for key in ("a", "b", "a", "c", "a", "b"):
        cache.get(key, loader(key))
    # a stays (recently used), b was evicted by c and loaded again, evicting c.
    assert loads == ["a", "b", "c", "b"]
    assert len(cache) == 2 and cache.bytes == 2 * size
    assert not NetworkCache(max_bytes=size - 1).get("x", loader("x")).training
