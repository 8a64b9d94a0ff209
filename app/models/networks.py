"""A model's network at a version: built through its architecture plugin, θ read and written in parts.

The one place where the service turns a model row and a version row into a MultiHeadNet and back, so
that model creation, training, refreshes and predictions agree on which parameters are frozen and on
how θ is split into blobs (app/versions/theta.py).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from app.architectures import registry
from app.architectures.spec import ArchitectureSpec
from app.db.tables import Version
from app.mas.networks import MultiHeadNet
from app.store import BlobStore
from app.versions.service import load_theta
from app.versions.theta import StoredTheta, assign_groups, store_theta


def version_network(store: BlobStore, architecture: ArchitectureSpec, version: Version,
                    trainable: Any = None) -> MultiHeadNet:
    """θ of `version` in its architecture, with the frozen parameters that `trainable` (default: the
    model's own setting) leaves untrained."""
    net = registry.load_network(architecture, load_theta(store=store, version=version))
    net.freeze(registry.frozen_names(architecture, net, trainable))
    return net


def save_network(store: BlobStore, architecture: ArchitectureSpec, net: MultiHeadNet, theta: dict[str, Tensor],
                 base: Version | None = None) -> StoredTheta:
    """`theta` (the state of `net` on the CPU, which the caller already holds) in parts; groups whose
    every tensor is frozen are the base's blobs, named again without being serialised (they cannot
    have changed: no optimiser, batch-norm in eval mode)."""
    groups = registry.theta_groups(architecture, net)
    parameters = {name for name, _ in net.named_parameters()}
    unchanged: dict[str, str] = {}
    for group, members in assign_groups(list(theta), groups).items():
        owned = [name for name in members if name in parameters]
        if base is not None and group in (base.theta_parts or {}) and owned and net.frozen.issuperset(owned):
            unchanged[group] = base.theta_parts[group]
    return store_theta(store, theta, groups, unchanged=unchanged)
