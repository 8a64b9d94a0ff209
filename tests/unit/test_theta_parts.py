"""θ in parts: a round trip, shared parts written once, frozen groups named again unserialised, and a
database made before parts (migration 0003) upgraded and still read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import torch
from alembic import command
from alembic.script import ScriptDirectory

from app.db.migrate import alembic_config
from app.mas.tensors_io import tensors_to_bytes
from app.settings import Settings
from app.store import LocalBlobStore
from app.versions.theta import REST, assign_groups, load_theta_parts, store_theta


def _theta() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "trunk.0.weight": torch.randn(8, 4, generator=generator),
        "trunk.0.bias": torch.randn(8, generator=generator),
        "trunk.1.weight": torch.randn(3, generator=generator),
        "trunk.1.running_mean": torch.randn(3, generator=generator),
        "heads.a.weight": torch.randn(2, 8, generator=generator), "extra": torch.ones(1),
    }


GROUPS = {"block0": ["trunk.0.weight", "trunk.0.bias"], "block1": ["trunk.1.weight"], "heads.a": ["heads.a.weight"]}


def test_buffers_join_their_module_and_the_rest_is_one_group() -> None:
    assigned = assign_groups(list(_theta()), GROUPS)
    assert assigned["block1"] == ["trunk.1.weight", "trunk.1.running_mean"]
    assert assigned[REST] == ["extra"]
    assert sorted(n for members in assigned.values() for n in members) == sorted(_theta())


def test_parts_round_trip_bit_for_bit_and_a_second_store_writes_nothing(tmp_path: Path) -> None:
    store, theta = LocalBlobStore(tmp_path), _theta()
    first = store_theta(store, theta, GROUPS)
    assert first.bytes_written > 0 and set(first.parts) == {"block0", "block1", "heads.a", REST}
    loaded = load_theta_parts(store, first.manifest, first.parts)
    assert loaded.keys() == theta.keys() and all(torch.equal(loaded[k], theta[k]) for k in theta)
    again = store_theta(store, theta, GROUPS)
    assert again.bytes_written == 0 and again.manifest == first.manifest


def test_a_changed_block_writes_only_its_part(tmp_path: Path) -> None:
    store, theta = LocalBlobStore(tmp_path), _theta()
    first = store_theta(store, theta, GROUPS)
    theta["trunk.0.bias"] = theta["trunk.0.bias"] + 1
    second = store_theta(store, theta, GROUPS, unchanged={"block1": first.parts["block1"]})
    changed = tensors_to_bytes({k: theta[k] for k in GROUPS["block0"]})
    assert {g for g in GROUPS if second.parts[g] != first.parts[g]} == {"block0"}
    assert len(changed) <= second.bytes_written < len(changed) + 1024  # the part and the small manifest


def test_a_version_row_from_before_parts_is_read_after_the_migration(tmp_path: Path) -> None:
    store, theta = LocalBlobStore(tmp_path / "blobs"), _theta()
    whole = store.put(tensors_to_bytes(theta))
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'old.db'}", var_dir=tmp_path)
    config = alembic_config(settings)
    command.upgrade(config, "0003")  # the schema today's main (before parts) makes
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute("INSERT INTO models (name, architecture, seed, head, queue, created_at) VALUES "
                   "('m', '{\"kind\": \"mlp\", \"input_shape\": [4], \"hidden\": [8]}', 0, 0, 'cpu', '2026-11-01')")
        db.execute("INSERT INTO versions (model_id, number, kind, theta_blob, omega_frozen_blob, omega_open_blob,"
                   " n_open, tasks, accuracy, importance, created_at) VALUES "
                   f"(1, 0, 'init', '{whole}', '{whole}', '{whole}', 0, '[]', '{{}}', '{{}}', '2026-11-01')")
    command.upgrade(config, "head")
    with sqlite3.connect(tmp_path / "old.db") as db:
        blob, parts = db.execute("SELECT theta_blob, theta_parts FROM versions").fetchone()
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == (
            ScriptDirectory.from_config(config).get_current_head(),)
    assert blob == whole and parts is None
    loaded = load_theta_parts(store, blob, parts)
    assert all(torch.equal(loaded[k], theta[k]) for k in theta)
