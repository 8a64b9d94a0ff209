"""Architecture kinds: how `architecture.kind` becomes a trunk, its blocks and its input preprocessing.

`registry` finds the installed kinds (entry point group `lifelong.architectures`) and builds and
loads MultiHeadNets from a spec; `base` is the interface a kind (built-in or plugin) implements;
`arrays`, `text` and `image` are the built-in kinds mlp/cnn, text-encoder and image-backbone; `spec` types
the validated spec each kind takes (`ArchitectureSpec`).
Only this package knows about transformers and EfficientNet; app.mas sees a trunk like any other.
"""

from app.architectures.base import Architecture
from app.architectures.registry import (
    build_network,
    frozen_names,
    get_architecture,
    installed_architectures,
    load_network,
    theta_groups,
    trunk_split,
    validate_architecture,
)
from app.architectures.spec import ArchitectureSpec

__all__ = [
    "Architecture",
    "ArchitectureSpec",
    "build_network",
    "frozen_names",
    "get_architecture",
    "installed_architectures",
    "load_network",
    "theta_groups",
    "trunk_split",
    "validate_architecture",
]
