"""Networks: shapes, heads, and θ surviving safetensors bit for bit."""

from __future__ import annotations

import pytest
import torch

from app.mas.networks import build_network, load_network, network_state, validate_architecture
from app.mas.tensors_io import tensors_from_bytes, tensors_to_bytes
from tests.unit.conftest import sample_inputs


@pytest.mark.parametrize("net_name", ["mlp", "cnn"])
def test_state_round_trips_through_safetensors_bit_for_bit(net_name: str, request: pytest.FixtureRequest) -> None:
    net = request.getfixturevalue(net_name)
    state = network_state(net)
    restored = tensors_from_bytes(tensors_to_bytes(state))
    assert restored.keys() == state.keys()
    for name in state:
        assert torch.equal(restored[name], state[name]) and restored[name].dtype == state[name].dtype
    rebuilt = load_network(net.architecture, restored)
    assert set(rebuilt.tasks.items()) == set(net.tasks.items())
    x = sample_inputs(net, 4)
    for task in net.tasks:
        assert torch.equal(rebuilt(x, task), net(x, task))


def test_equal_tensors_give_equal_bytes(mlp) -> None:
    assert tensors_to_bytes(network_state(mlp)) == tensors_to_bytes(dict(reversed(network_state(mlp).items())))


def test_build_is_seeded_and_leaves_the_global_rng_alone() -> None:
    arch = {"kind": "mlp", "input_shape": [4], "hidden": [3]}
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    a, b = build_network(arch, seed=2), build_network(arch, seed=2)
    assert torch.equal(torch.rand(1), before)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_each_task_uses_only_its_own_head(mlp) -> None:
    x = sample_inputs(mlp, 3)
    assert mlp(x, "a").shape == (3, 3) and mlp(x, "b").shape == (3, 4)
    with pytest.raises(ValueError):
        mlp.add_head("a", 2, seed=0)
    with pytest.raises(ValueError):
        mlp.add_head("Bad/Name", 2, seed=0)


@pytest.mark.parametrize(
    "arch",
    [
        {"kind": "rnn", "input_shape": [3]},
        {"kind": "mlp", "input_shape": [3, 4]},
        {"kind": "mlp", "input_shape": [0]},
        {"kind": "mlp", "input_shape": [3], "hidden": [-1]},
        {"kind": "cnn", "input_shape": [1, 8]},
        {"kind": "cnn", "input_shape": [1, 8, 8], "channels": []},
        {"kind": "mlp", "input_shape": [True]},
    ],
)
def test_bad_architectures_are_refused_with_a_reason(arch: dict) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        validate_architecture(arch)
