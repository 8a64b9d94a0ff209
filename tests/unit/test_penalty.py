"""The penalty λ Σ Ω (θ − θ*)² in both forms, against autograd and the closed-form minimiser."""

from __future__ import annotations

import pytest
import torch

from app.mas.methods import make_method
from app.mas.networks import network_state
from app.mas.penalty import QuadraticAnchor
from app.mas.training import NonFiniteLoss, TrainConfig, train_task


def random_tensors(seed: int, *shapes: tuple[int, ...], positive: bool = False) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = [torch.randn(*s, generator=g) for s in shapes]
    return [t.abs() for t in out] if positive else out


SHAPES = ((3, 4), (4,), (2, 2, 3))


def test_gradient_form_equals_autograd_of_the_penalty() -> None:
    params = [t.requires_grad_() for t in random_tensors(0, *SHAPES)]
    theta_star, omega = random_tensors(1, *SHAPES), random_tensors(2, *SHAPES, positive=True)
    lam = 0.7
    penalty = lam * sum((o * (p - s) ** 2).sum() for p, s, o in zip(params, theta_star, omega, strict=True))
    expected = torch.autograd.grad(penalty, params)
    for p in params:
        p.grad = torch.zeros_like(p)
    anchor = QuadraticAnchor(params, theta_star, omega, lam)
    anchor.add_gradient()
    for p, e in zip(params, expected, strict=True):
        torch.testing.assert_close(p.grad, e)
    torch.testing.assert_close(torch.tensor(anchor.value()), penalty.detach())


@pytest.mark.parametrize("lam, lr", [(1.0, 0.01), (50.0, 0.5), (1e6, 1.0)])
def test_proximal_step_is_the_elementwise_minimiser(lam: float, lr: float) -> None:
    stepped = random_tensors(3, *SHAPES)  # θ' after the optimizer's step
    theta_star, omega = random_tensors(4, *SHAPES), random_tensors(5, *SHAPES, positive=True)
    params = [t.clone() for t in stepped]
    QuadraticAnchor(params, theta_star, omega, lam).proximal_step(lr)
    for p, prime, star, o in zip(params, stepped, theta_star, omega, strict=True):
        # The objective λΩ(θ − θ*)² + (θ − θ')²/(2·lr) is convex: a zero gradient means its minimum.
        theta = p.clone().double().requires_grad_()
        objective = (lam * o.double() * (theta - star.double()) ** 2 + (theta - prime.double()) ** 2 / (2 * lr)).sum()
        (gradient,) = torch.autograd.grad(objective, theta)
        scale = 1 + lam * o.double() + 1 / lr
        assert (gradient.abs() / scale).max() < 1e-5
        lo, hi = torch.minimum(prime, star), torch.maximum(prime, star)
        assert ((p >= lo - 1e-6) & (p <= hi + 1e-6)).all()


def test_where_omega_is_zero_the_proximal_step_leaves_theta_bit_for_bit() -> None:
    params = random_tensors(6, *SHAPES)
    before = [p.clone() for p in params]
    QuadraticAnchor(params, random_tensors(7, *SHAPES), [torch.zeros(s) for s in SHAPES], 3.0).proximal_step(0.1)
    assert all(torch.equal(a, b) for a, b in zip(params, before, strict=True))


def _train(net, method, form_data, config):
    x, y = form_data
    return train_task(net, "b", 4, x, y, method, config)


@pytest.fixture
def task_b_data():
    g = torch.Generator().manual_seed(9)
    return torch.randn(40, 7, generator=g), torch.randint(0, 4, (40,), generator=g)


def test_mas_with_lambda_zero_is_finetune_bit_for_bit(mlp, task_b_data) -> None:
    import copy

    mlp.heads.pop("b")
    omega = {n: torch.rand_like(t) for n, t in network_state(mlp).items()}
    config = TrainConfig(epochs=2, batch_size=8, lr=0.05, seed=4)
    results = []
    for method in (make_method("finetune"), make_method("mas", lam=0.0, theta_star=network_state(mlp), omega=omega)):
        net = copy.deepcopy(mlp)
        _train(net, method, task_b_data, config)
        results.append(network_state(net))
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])


def test_old_heads_do_not_move_and_the_new_head_carries_no_penalty(mlp, task_b_data) -> None:
    import copy

    mlp.heads.pop("b")
    before = network_state(mlp)
    fresh = copy.deepcopy(mlp)
    fresh.add_head("b", 4, seed=0)  # what training creates with the config's seed
    omega = {n: torch.full_like(t, 1e6) for n, t in before.items()}  # nails every anchored parameter
    method = make_method("mas", lam=1.0, theta_star=before, omega=omega)
    _train(mlp, method, task_b_data, TrainConfig(epochs=3, batch_size=8, lr=0.05, optimizer="adam"))
    after = network_state(mlp)
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("heads.a."))
    assert all(torch.allclose(after[k], before[k], atol=1e-4) for k in before if k.startswith("trunk."))
    assert "heads.b.weight" not in before and "heads.b.weight" not in omega
    initial = network_state(fresh)["heads.b.weight"]
    assert (after["heads.b.weight"] - initial).abs().max() > 0.05  # the new head learned, unanchored


def test_proximal_form_is_stable_where_the_gradient_form_diverges(mlp, task_b_data) -> None:
    import copy

    mlp.heads.pop("b")
    theta_star = network_state(mlp)
    # 2·lr·λ·Ω = 2 · 0.1 · 1 · 100 = 20 ≫ 2 on the trunk's output layer, as large Ω is in practice.
    omega = {n: (torch.full_like(t, 100.0) if n.startswith("trunk.2") else torch.full_like(t, 0.01))
             for n, t in theta_star.items()}
    config = TrainConfig(epochs=5, batch_size=8, lr=0.1, momentum=0.9, seed=0)

    prox_net = copy.deepcopy(mlp)
    # The head is created inside training; remember the parameters before the run to bound the anchored ones.
    result = _train(prox_net, make_method("mas", lam=1.0, theta_star=theta_star, omega=omega), task_b_data, config)
    assert torch.isfinite(torch.tensor(result.loss))
    assert all(torch.isfinite(p).all() for p in prox_net.parameters())
    moved = (prox_net.trunk[2].weight.detach() - theta_star["trunk.2.weight"]).abs().max()
    assert moved < 0.05  # held near θ* by the strong anchor, without oscillating

    grad_net = copy.deepcopy(mlp)
    with pytest.raises(NonFiniteLoss, match="loss became"):
        _train(grad_net, make_method("mas", lam=1.0, theta_star=theta_star, omega=omega, form="gradient"),
               task_b_data, config)
