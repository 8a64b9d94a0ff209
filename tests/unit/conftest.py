"""Small networks and data shared by the math tests; everything is seeded, nothing is downloaded."""

from __future__ import annotations

import pytest
import torch

from app.mas.networks import MultiHeadNet, build_network


def with_heads(net: MultiHeadNet, heads: dict[str, int]) -> MultiHeadNet:
    for i, (task, classes) in enumerate(heads.items()):
        net.add_head(task, classes, seed=100 + i)
    return net


@pytest.fixture
def mlp() -> MultiHeadNet:
    return with_heads(build_network({"kind": "mlp", "input_shape": [7], "hidden": [6, 5]}, seed=0), {"a": 3, "b": 4})


@pytest.fixture
def cnn() -> MultiHeadNet:
    arch = {"kind": "cnn", "input_shape": [2, 6, 5], "channels": [3, 4], "hidden": [5]}
    return with_heads(build_network(arch, seed=1), {"a": 3})


def sample_inputs(net: MultiHeadNet, n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, *net.input_shape, generator=torch.Generator().manual_seed(seed))
