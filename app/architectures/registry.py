"""The installed architecture kinds, by `architecture.kind`, and the networks built from a spec.

Kinds come from the entry point group `lifelong.architectures` (name = kind, value = an `Architecture`
subclass or instance); the built-ins (mlp, cnn, text-encoder, image-backbone) are declared there by
this project's pyproject.toml like any plugin, and are added directly when the project runs from a
source tree that was never installed. A plugin that fails to load is logged and left out, so one
broken package cannot take the service down.

`trainable` decides which trunk parameters learn: "all", "none" (frozen features, heads only) or
{"last": N} (the last N blocks). Frozen parameters get no gradient, no Ω and no penalty (MAS.md §6).

`validate_architecture` turns a request's JSON object into an `ArchitectureSpec` (app/architectures/spec.py);
everything else here takes the validated spec.
"""

from __future__ import annotations

import json
import logging
from functools import cache, lru_cache
from importlib.metadata import entry_points
from typing import Any, cast

import torch

from app.architectures.arrays import CNN, MLP
from app.architectures.base import Architecture, normalise_trainable
from app.architectures.image import ImageBackbone
from app.architectures.spec import ArchitectureSpec
from app.architectures.text import TextEncoder
from app.mas.frozen_prefix import TrunkSplit
from app.mas.networks import MultiHeadNet, load_state
from app.mas.task_statistics import KEY_PART

ENTRY_POINT_GROUP = "lifelong.architectures"
BUILTIN: tuple[type[Architecture[Any]], ...] = (MLP, CNN, TextEncoder, ImageBackbone)
REST = "rest"  # the θ group of parameters and buffers outside every block and head

logger = logging.getLogger(__name__)


@cache
def installed_architectures() -> dict[str, Architecture[Any]]:
    """Every installed kind → its Architecture, sorted by kind (read once per process)."""
    found: dict[str, Architecture[Any]] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
            architecture = loaded() if isinstance(loaded, type) else loaded
            if not isinstance(architecture, Architecture) or architecture.kind != point.name:
                raise TypeError(f"{point.value} is not an Architecture of kind {point.name!r}")
        except Exception:
            logger.exception("architecture plugin %s (%s) failed to load; left out", point.name, point.value)
            continue
        found[point.name] = architecture
    for builtin in BUILTIN:
        found.setdefault(builtin.kind, builtin())
    return dict(sorted(found.items()))


def get_architecture(kind: Any) -> Architecture[Any]:
    installed = installed_architectures()
    if not isinstance(kind, str) or kind not in installed:
        raise ValueError(f"architecture.kind must be one of {', '.join(installed)} (got {kind!r})")
    return installed[kind]


def validate_architecture(spec: Any) -> ArchitectureSpec:
    """The spec normalised by its kind (defaults filled in); ValueError says what is wrong."""
    if not isinstance(spec, dict):
        raise ValueError("architecture must be an object")
    return get_architecture(spec.get("kind")).validate(spec)


def _network(spec: ArchitectureSpec, *, pretrained: bool, seed: int) -> MultiHeadNet:
    architecture = get_architecture(spec["kind"])
    with torch.random.fork_rng(devices=[]):  # building draws initial values; the caller's RNG stays as it was
        torch.manual_seed(seed)
        net = MultiHeadNet(*architecture.build_trunk(spec, pretrained=pretrained, seed=seed))
    net.architecture = spec
    net.freeze(frozen_names(spec, net))
    return net


def trunk_parameter_count(spec: ArchitectureSpec) -> int:
    """Parameters of the trunk a (validated) spec describes, counted on the meta device: nothing is
    allocated, so a spec asking for 40 GB is measured, and refused, without taking it."""
    return trunk_size(spec)[0]


def trunk_size(spec: ArchitectureSpec) -> tuple[int, int]:
    """The trunk's parameter count and feature width (what each task's head takes), measured on the meta
    device; kept per spec, since every task submission asks (a head's size depends on the width)."""
    return _trunk_size(json.dumps(spec, sort_keys=True))


@lru_cache(maxsize=64)
def _trunk_size(spec_json: str) -> tuple[int, int]:
    spec = cast(ArchitectureSpec, json.loads(spec_json))
    with torch.device("meta"), torch.random.fork_rng(devices=[]):
        trunk, feature_dim, _ = get_architecture(spec["kind"]).build_trunk(spec, pretrained=False, seed=0)
    return sum(parameter.numel() for parameter in trunk.parameters()), int(feature_dim)


def build_network(spec: ArchitectureSpec, seed: int) -> MultiHeadNet:
    """Version 0: the kind's pretrained weights where it has them (else initialised from `seed`), no heads,
    trunk parameters frozen as the spec's `trainable` says."""
    return _network(validate_architecture(spec), pretrained=True, seed=seed)


def load_network(spec: ArchitectureSpec, state: dict[str, torch.Tensor]) -> MultiHeadNet:
    """A stored version: the kind's shapes (no pretrained load), then θ and its heads from `state`."""
    return load_state(_network(validate_architecture(spec), pretrained=False, seed=0), state)


def frozen_names(spec: ArchitectureSpec, net: MultiHeadNet, trainable: Any = None) -> frozenset[str]:
    """The trunk parameters that do not learn under `trainable` (a task's override; default: the spec's)."""
    blocks = get_architecture(spec["kind"]).blocks(spec, net.trunk)
    choice = normalise_trainable(spec.get("trainable", "all") if trainable is None else trainable, len(blocks))
    trunk = {name for name, _ in net.trunk.named_parameters(prefix="trunk")}
    if choice == "all":
        return frozenset()
    learning = set() if choice == "none" else {n for block in blocks[len(blocks) - choice["last"]:] for n in block}
    return frozenset(trunk - learning)


def trunk_split(spec: ArchitectureSpec, net: MultiHeadNet) -> TrunkSplit | None:
    """Where `net`'s trunk splits into the frozen prefix a job computes once and the part that trains: before
    its first block with a trainable parameter; None where the kind offers no split or nothing is frozen."""
    architecture = get_architecture(spec["kind"])
    blocks = architecture.blocks(spec, net.trunk)
    start = next((i for i, block in enumerate(blocks) if any(name not in net.frozen for name in block)), len(blocks))
    return architecture.trunk_split(spec, net.trunk, start) if start > 0 else None


def theta_groups(spec: ArchitectureSpec, net: MultiHeadNet) -> dict[str, list[str]]:
    """θ's keys (as `network_state` names them: parameters and persistent buffers) in groups for block-wise
    storage: "block.<i>" per trunk block, "heads.<task>" per head, and "rest" for anything else. A buffer
    (batch-norm statistics, and each task's copy of them) goes with the block of the batch norm that owns
    it, so a frozen block's group never changes between versions and can be stored once."""
    blocks = get_architecture(spec["kind"]).blocks(spec, net.trunk)
    module_block = {name.rsplit(".", 1)[0]: i for i, block in enumerate(blocks) for name in block}
    groups: dict[str, list[str]] = {f"block.{i}": [] for i in range(len(blocks))}
    groups.update({f"heads.{task}": [] for task in net.heads})
    groups[REST] = []
    for key in net.state_dict():
        parts = key.split(".")
        if parts[0] == "heads" and f"heads.{parts[1]}" in groups:
            groups[f"heads.{parts[1]}"].append(key)
        elif (owner := key.split(KEY_PART)[0] if KEY_PART in key else key.rsplit(".", 1)[0]) in module_block:
            groups[f"block.{module_block[owner]}"].append(key)
        else:
            groups[REST].append(key)
    return groups
