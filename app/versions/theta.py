"""θ stored in parts: one content-addressed safetensors blob per group of tensors, and a manifest.

A pretrained trunk is most of a model's bytes (all-MiniLM-L6-v2: 90 MB) and most of it never changes:
blocks that a model does not train, and the heads of earlier tasks, are the same tensors in every
version. Stored as one file per version, each version would write all of it again. Stored per group
(a block of the trunk, one head), a version writes only the groups that changed, and versions, and
models on the same backbone, share every other part by name.

The version row names a small manifest blob (`theta_blob`: the identity of the whole θ, used as a cache
key and as the checkpoint's name) and keeps the same map in `theta_parts` for the garbage collector.
A row without parts (written before parts existed) names one safetensors file holding all of θ.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor

from app.mas.tensors_io import tensors_from_bytes, tensors_to_bytes
from app.store import BlobStore

MANIFEST_FORMAT = "lifelong-theta-parts/1"
REST = "rest"  # the group of every tensor that no named group claims


@dataclass(frozen=True)
class StoredTheta:
    """Where a θ went: its manifest blob, its parts, and the bytes this call newly wrote."""

    manifest: str
    parts: dict[str, str]
    bytes_written: int


def assign_groups(names: list[str], groups: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Every state name in exactly one group: named groups hold parameters; a buffer (batch-norm
    statistics) joins the group of a parameter of its own module, anything else goes to `rest`."""
    owner = {name: group for group, members in groups.items() for name in members}
    module_group = {name.rsplit(".", 1)[0]: group for name, group in owner.items()}
    assigned: dict[str, list[str]] = {group: [] for group in groups}
    for name in names:
        group = owner.get(name) or module_group.get(name.rsplit(".", 1)[0], REST)
        assigned.setdefault(group, []).append(name)
    return {group: members for group, members in assigned.items() if members}


def store_theta(
    store: BlobStore,
    theta: Mapping[str, Tensor],
    groups: Mapping[str, list[str]],
    *,
    unchanged: Mapping[str, str] | None = None,
) -> StoredTheta:
    """Write θ as parts. `unchanged` maps groups known to equal the base's (frozen blocks) to the base's
    blob: those are named again without being serialised. Every other group is serialised and put;
    content addressing makes an unchanged one a no-op write."""
    unchanged = unchanged or {}
    parts: dict[str, str] = {}
    written = 0
    for group, members in assign_groups(list(theta), groups).items():
        if group in unchanged:
            parts[group] = unchanged[group]
            continue
        data = tensors_to_bytes({name: theta[name] for name in members})
        existed = _exists(store, data)
        parts[group] = store.put(data)
        written += 0 if existed else len(data)
    manifest = json.dumps({"format": MANIFEST_FORMAT, "parts": parts}, sort_keys=True).encode()
    written += 0 if _exists(store, manifest) else len(manifest)
    return StoredTheta(manifest=store.put(manifest), parts=parts, bytes_written=written)


def load_theta_parts(store: BlobStore, theta_blob: str, parts: Mapping[str, str] | None) -> dict[str, Tensor]:
    """θ of a version row: the union of its parts, or the one file of a row written before parts."""
    if not parts:
        return tensors_from_bytes(store.get(theta_blob))
    theta: dict[str, Tensor] = {}
    for blob in parts.values():
        theta.update(tensors_from_bytes(store.get(blob)))
    return theta


def _exists(store: BlobStore, data: bytes) -> bool:
    return store.exists(hashlib.sha256(data).hexdigest())
