"""Ω against independent computations: single-sample autograd loops, hand-written batch gradients,
torch.autograd.functional.jacobian, and the Hebbian product of MAS.md §2."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from app.mas.importance import estimate_importance, estimate_importance_vmap
from app.mas.networks import MultiHeadNet, build_network
from tests.unit.conftest import sample_inputs, with_heads


def measured_params(net: MultiHeadNet, task: str) -> dict[str, nn.Parameter]:
    return {n: p for n, p in net.named_parameters() if n.startswith("trunk.") or n.startswith(f"heads.{task}.")}


def slow_loop_l2(net: MultiHeadNet, task: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Σ_k |∂‖F(x_k)‖²/∂θ|, one sample and one backward at a time."""
    net.eval()
    params = measured_params(net, task)
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for k in range(x.shape[0]):
        grads = torch.autograd.grad(net(x[k : k + 1], task).square().sum(), list(params.values()))
        for n, g in zip(params, grads, strict=True):
            total[n] += g.abs()
    return total


def assert_close(actual: dict, expected: dict, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize("net_name", ["mlp", "cnn"])
def test_per_sample_equals_a_slow_loop_of_single_sample_backward_passes(net_name, request) -> None:
    net = request.getfixturevalue(net_name)
    x = sample_inputs(net, 19)
    result = estimate_importance(net, "a", x, chunk_size=8)
    assert result.n == 19
    assert_close(result.sums, slow_loop_l2(net, "a", x))


@pytest.mark.parametrize("net_name", ["mlp", "cnn"])
def test_vmap_reference_path_equals_the_slow_loop(net_name, request) -> None:
    net = request.getfixturevalue(net_name)
    x = sample_inputs(net, 9)
    assert_close(estimate_importance_vmap(net, "a", x, chunk_size=4).sums, slow_loop_l2(net, "a", x))


def test_layers_that_do_not_factor_fall_back_to_vmap_and_stay_exact() -> None:
    net = with_heads(build_network({"kind": "mlp", "input_shape": [5], "hidden": [6]}, seed=3), {"a": 2})
    net.trunk.append(nn.LayerNorm(6))  # a parameterised layer with no outer-product factorisation
    x = sample_inputs(net, 11)
    result = estimate_importance(net, "a", x)
    assert {"trunk.2.weight", "trunk.2.bias"} <= result.sums.keys()
    assert_close(result.sums, slow_loop_l2(net, "a", x))


def test_batch_reduction_is_the_absolute_gradient_of_the_summed_norm(mlp) -> None:
    x = sample_inputs(mlp, 12)
    params = measured_params(mlp, "b")
    grads = torch.autograd.grad(mlp(x, "b").square().sum(), list(params.values()))
    by_hand = {n: g.abs() for n, g in zip(params, grads, strict=True)}
    result = estimate_importance(mlp, "b", x, reduction="batch", chunk_size=12)
    assert_close(result.sums, by_hand)
    exact = estimate_importance(mlp, "b", x).sums
    # |Σ g| ≤ Σ |g|: the batch estimate never exceeds the exact one, and is below it somewhere.
    assert all((result.sums[n] <= exact[n] + 1e-6).all() for n in exact)
    assert any((result.sums[n] < exact[n] - 1e-4).any() for n in exact)


@pytest.mark.parametrize("net_name", ["mlp", "cnn"])
def test_vector_output_equals_the_norm_of_the_per_output_jacobian(net_name, request) -> None:
    net = request.getfixturevalue(net_name)
    net.eval()
    x = sample_inputs(net, 6)
    params = measured_params(net, "a")
    names = list(params)
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    for k in range(x.shape[0]):
        def outputs(*values: torch.Tensor, k: int = k) -> torch.Tensor:
            return functional_call(net, dict(zip(names, values, strict=True)), (x[k : k + 1], "a")).squeeze(0)

        jacobians = torch.autograd.functional.jacobian(outputs, tuple(p.detach() for p in params.values()))
        for n, jac in zip(names, jacobians, strict=True):
            expected[n] += jac.norm(dim=0)  # ‖∂F(x_k)/∂θ_ij‖₂ over the outputs
    assert_close(estimate_importance(net, "a", x, output="vector", chunk_size=4).sums, expected)
    assert_close(estimate_importance_vmap(net, "a", x, output="vector").sums, expected)


def test_local_importance_of_linear_relu_is_the_hebbian_product(mlp) -> None:
    x = sample_inputs(mlp, 10)
    first = mlp.trunk[0]
    result = estimate_importance(mlp, "a", x, variant="local")
    hebbian = torch.zeros_like(first.weight)
    literal = torch.zeros_like(first.weight)
    for k in range(x.shape[0]):
        y = torch.relu(first(x[k]))
        hebbian += 2 * torch.outer(y, x[k]).abs().detach()  # MAS.md §2: 2 |y_i x_j|
        w = first.weight.detach().clone().requires_grad_()
        (g,) = torch.autograd.grad(torch.relu(x[k] @ w.T + first.bias.detach()).square().sum(), w)
        literal += g.abs()  # the definition: the layer's own ‖output‖², its input held fixed
    torch.testing.assert_close(result.sums["trunk.0.weight"], hebbian, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(result.sums["trunk.0.weight"], literal, rtol=1e-5, atol=1e-6)
    assert result.sums.keys() == measured_params(mlp, "a").keys()


def test_chunking_does_not_change_the_exact_estimate(cnn) -> None:
    x = sample_inputs(cnn, 23)
    one_shot = estimate_importance(cnn, "a", x, chunk_size=64).sums
    assert_close(estimate_importance(cnn, "a", x, chunk_size=5).sums, one_shot)


def test_measuring_changes_nothing_in_the_network() -> None:
    net = with_heads(build_network({"kind": "mlp", "input_shape": [4], "hidden": [6]}, seed=0), {"a": 2})
    net.trunk.insert(1, nn.BatchNorm1d(6))
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for options in ({}, {"reduction": "batch"}, {"output": "vector"}):
        estimate_importance(net, "a", sample_inputs(net, 16) * 5 + 3, **options)
    estimate_importance_vmap(net, "a", sample_inputs(net, 4))
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # θ and running statistics, bit for bit
    assert net.training and all(p.grad is None for p in net.parameters())


def test_bad_options_are_refused(mlp) -> None:
    x = sample_inputs(mlp, 2)
    with pytest.raises(ValueError):
        estimate_importance(mlp, "missing", x)
    with pytest.raises(ValueError):
        estimate_importance(mlp, "a", x, variant="local", output="vector")
    with pytest.raises(ValueError):
        estimate_importance(mlp, "a", x, reduction="mean")
    with pytest.raises(ValueError):
        estimate_importance(mlp, "a", torch.zeros(2, 3))


def test_convolutions_summed_over_several_blocks_stay_exact(cnn) -> None:
    x = sample_inputs(cnn, 300)  # more than one block of per-sample gradients in one chunk
    assert_close(estimate_importance(cnn, "a", x, chunk_size=300).sums, slow_loop_l2(cnn, "a", x), rtol=1e-4)
