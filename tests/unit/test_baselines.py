"""The baselines against their definitions: EWC's Fisher by a slow loop, SI's path integral against
the loss it explains, L2's uniform Ω, LwF's distillation keeping old heads' answers."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as functional

from app.mas.evaluation import predict
from app.mas.importance import squared_gradient_sums
from app.mas.methods import METHODS, make_method
from app.mas.networks import build_network, network_state
from app.mas.training import TrainConfig, train_task
from tests.unit.conftest import sample_inputs


def test_fisher_equals_a_slow_loop_of_squared_log_likelihood_gradients(cnn) -> None:
    x = sample_inputs(cnn, 13)
    y = torch.randint(0, 3, (13,), generator=torch.Generator().manual_seed(0))
    cnn.eval()
    params = cnn.task_parameters("a")
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    for k in range(13):
        loss = functional.cross_entropy(cnn(x[k : k + 1], "a"), y[k : k + 1])
        for n, g in zip(params, torch.autograd.grad(loss, list(params.values())), strict=True):
            expected[n] += g.square()
    result = squared_gradient_sums(cnn, "a", x, y, chunk_size=5)
    assert result.n == 13
    for n in expected:
        torch.testing.assert_close(result.sums[n], expected[n], rtol=1e-5, atol=1e-7)


def test_si_path_integral_explains_the_loss_decrease() -> None:
    """Full-batch gradient descent with a small lr: Σ ω = ∫ −∇L·dθ ≈ L(θ_start) − L(θ_end).

    On a smooth model (softmax regression): with ReLU units gradient descent chatters along kinks,
    where the discrete path integral and the loss change differ by a few percent at any lr.
    """
    mlp = build_network({"kind": "mlp", "input_shape": [7], "hidden": []}, seed=0)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(32, 7, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()  # learnable labels, so the loss really falls
    method = make_method("si", lam=0.0)
    config = TrainConfig(epochs=1000, batch_size=32, lr=0.02, momentum=0.0)
    mlp.add_head("c", 3, seed=config.seed)
    start_loss = float(functional.cross_entropy(mlp(x, "c"), y).detach())
    train_task(mlp, "c", 3, x, y, method, config)
    end_loss = float(functional.cross_entropy(mlp(x, "c"), y).detach())
    path_total = float(sum(p.sum() for p in method.path))
    assert start_loss - end_loss > 0.2
    assert abs(path_total - (start_loss - end_loss)) < 0.02 * (start_loss - end_loss)
    omega = method.task_importance(mlp, "c", x, y).sums
    assert all((o >= 0).all() and torch.isfinite(o).all() for o in omega.values())


def test_l2_importance_is_uniform(mlp) -> None:
    omega = make_method("l2").task_importance(mlp, "a", sample_inputs(mlp, 3), torch.zeros(3))
    assert omega.sums.keys() == mlp.task_parameters("a").keys()
    assert all(torch.equal(o, torch.ones_like(o)) for o in omega.sums.values())


def test_lwf_keeps_old_heads_answers_closer_than_finetune(mlp) -> None:
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(64, 7, generator=g) * 2, torch.randint(0, 4, (64,), generator=g)
    mlp.heads.pop("b")
    _, before = predict(mlp, "a", x)
    drift = {}
    for name in ("finetune", "lwf"):
        net = copy.deepcopy(mlp)
        train_task(net, "b", 4, x, y, make_method(name, lam=10.0), TrainConfig(epochs=20, batch_size=16, lr=0.05))
        assert torch.equal(network_state(net)["heads.a.weight"], mlp.heads["a"].weight)
        drift[name] = float((predict(net, "a", x)[1] - before).abs().mean())
    assert drift["lwf"] < 0.5 * drift["finetune"]


def test_every_method_trains_a_sequence_of_two_tasks(mlp) -> None:
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(24, 7, generator=g), torch.randint(0, 2, (24,), generator=g)
    for name in METHODS:
        net = copy.deepcopy(mlp)
        omega = make_method(name).task_importance(net, "a", x, y) if name != "si" else None
        learner = make_method(name, lam=1.0, theta_star=network_state(net), omega=omega.sums if omega else {})
        train_task(net, "c", 2, x, y, learner, TrainConfig(epochs=1, batch_size=8))
        assert all(torch.isfinite(p).all() for p in net.parameters()), name


def test_a_method_takes_only_its_own_options() -> None:
    """issue 13: options a method does not use are refused (here and, through TaskRequest, with a 422)."""
    from app.learning.schemas import TaskRequest

    assert make_method("si", options={"damping": 0.5}).damping == 0.5
    assert make_method("lwf", options={"temperature": 4.0}).temperature == 4.0
    with pytest.raises(ValueError, match="takes no option 'damping'"):
        make_method("mas", options={"damping": 0.5})
    with pytest.raises(ValueError, match="strictly between"):
        make_method("si", options={"damping": 0.0})
    base = {"task": "t", "train": {"dataset": "d"}}
    assert TaskRequest.model_validate({**base, "method": "lwf"}).method_options == {"temperature": 2.0}
    for refused in ({"method": "finetune", "penalty": "gradient"}, {"method": "finetune", "lambda": 3},
                    {"method": "lwf", "penalty": "proximal"}, {"method": "mas", "method_options": {"temperature": 1}}):
        with pytest.raises(ValueError):
            TaskRequest.model_validate({**base, **refused})
