"""The `mlp` and `cnn` kinds: freshly initialised trunks over numeric arrays (app.mas.networks builds them).

Their blocks are the Linear and Conv2d layers, input side first; they have no pretrained weights, so
`trainable` defaults to "all".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from app.architectures.base import Architecture, check_options, normalise_trainable, trainable_option
from app.architectures.spec import ArraySpec
from app.mas.networks import InputSpec, builtin_trunk, validate_architecture


class _ArrayArchitecture(Architecture[ArraySpec]):
    input_kind = "array"
    _descriptions: dict[str, dict[str, Any]]

    def options(self) -> dict[str, dict[str, Any]]:
        return {**self._descriptions, "trainable": trainable_option("all")}

    def validate(self, spec: dict[str, Any]) -> ArraySpec:
        check_options(spec, set(self._descriptions))
        normalised = validate_architecture({k: v for k, v in spec.items() if k != "trainable"})
        n_blocks = len(normalised["hidden"]) + len(normalised.get("channels", []))
        normalised["trainable"] = normalise_trainable(spec.get("trainable", "all"), n_blocks)
        return cast(ArraySpec, normalised)  # app.mas (which must not know this package) returns a plain dict

    def build_trunk(self, spec: ArraySpec, *, pretrained: bool, seed: int) -> tuple[nn.Module, int, InputSpec]:
        return builtin_trunk(spec)

    def blocks(self, spec: ArraySpec, trunk: nn.Module) -> list[list[str]]:
        return [
            [f"trunk.{prefix}.{name}" for name, _ in module.named_parameters(recurse=False)]
            for prefix, module in trunk.named_modules()
            if isinstance(module, nn.Linear | nn.Conv2d)
        ]

    def preprocess(self, spec: ArraySpec, raw: Sequence[Any]) -> Tensor:
        """Rows of numbers, each reshaped to `input_shape` (flat rows or nested lists both work)."""
        shape = tuple(spec["input_shape"])
        try:
            array = np.asarray(raw, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise ValueError(f"inputs must be arrays of numbers: {error}") from error
        if array.ndim == 0 or array[0].size != int(np.prod(shape)) or array.size != len(array) * int(np.prod(shape)):
            raise ValueError(f"each input must hold {int(np.prod(shape))} numbers (input_shape {list(shape)})")
        return torch.from_numpy(array.reshape(len(array), *shape))


class MLP(_ArrayArchitecture):
    kind = "mlp"
    _descriptions = {
        "input_shape": {"default": None, "description": "[d]: numbers per sample (required)"},
        "hidden": {"default": [256, 256], "description": "widths of the hidden ReLU layers"},
    }


class CNN(_ArrayArchitecture):
    kind = "cnn"
    _descriptions = {
        "input_shape": {"default": None, "description": "[c, h, w]: channels and size of each sample (required)"},
        "channels": {"default": [16, 32], "description": "output channels of the 3×3 convolutions"},
        "hidden": {"default": [128], "description": "widths of the ReLU layers after the convolutions"},
    }
