"""An example plugin: the `tiny-tabular` kind, one tanh layer over `features` numbers per row.

It shows the whole contract of a plugin: subclass app.architectures.base.Architecture and name the
class under the entry point group `lifelong.architectures` in the package's pyproject.toml.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from app.architectures.base import Architecture, check_options, normalise_trainable, trainable_option
from app.mas.networks import InputSpec


class TinyTabular(Architecture):
    kind = "tiny-tabular"
    input_kind = "array"

    def options(self) -> dict[str, dict[str, Any]]:
        return {
            "features": {"default": 4, "description": "numbers per row"},
            "width": {"default": 8, "description": "width of the tanh layer"},
            "trainable": trainable_option("all"),
        }

    def validate(self, spec: dict) -> dict:
        check_options(spec, {"features", "width"})
        features, width = spec.get("features", 4), spec.get("width", 8)
        if not all(isinstance(v, int) and 0 < v <= 1024 for v in (features, width)):
            raise ValueError("tiny-tabular: features and width must be integers between 1 and 1024")
        return {"kind": self.kind, "features": features, "width": width,
                "trainable": normalise_trainable(spec.get("trainable", "all"), 1)}

    def build_trunk(self, spec: dict, *, pretrained: bool, seed: int) -> tuple[nn.Module, int, InputSpec]:
        trunk = nn.Sequential(nn.Linear(spec["features"], spec["width"]), nn.Tanh())
        return trunk, spec["width"], InputSpec((spec["features"],))

    def blocks(self, spec: dict, trunk: nn.Module) -> list[list[str]]:
        return [["trunk.0.weight", "trunk.0.bias"]]

    def preprocess(self, spec: dict, raw: Sequence[Any]) -> Tensor:
        return torch.as_tensor(raw, dtype=torch.float32).reshape(len(raw), spec["features"])
