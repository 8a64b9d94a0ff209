"""The proximal penalty's fixed point under SGD, SGD with momentum and Adam, against the closed form.

On the quadratic loss L(θ) = Σ a (θ − b)², the minimiser of L + λΣΩ(θ − θ*)² is, elementwise,
θ = (a·b + λΩ·θ*) / (a + λΩ). The loop's own pieces run to stationarity (a torch optimizer,
backward, the method's before_step, the optimizer's step, the method's after_step): the stationary
θ must be that minimiser whatever the optimizer, for λΩ from 1e-3 to 1e6 (MAS.md §3). A prox with
the configured lr as its step size stops elsewhere: at the minimiser for λ(1 − β) with momentum β,
and, with Adam, at a point that ignores the loss's scale; these tests fail for it by a factor.
"""

from __future__ import annotations

import math

import pytest
import torch

from app.mas.methods import make_method
from app.mas.penalty import effective_step_size
from app.mas.training import NonFiniteLoss

SHAPES = ((5,), (2, 3))
# The distance of the stationary θ from the minimiser, relative to its distance from θ* or from b
# (whichever is smaller, so that both the weak and the strong anchor are measured at their scale).
RTOL = 1e-6
# Steps and lr that converge in float64 for every λΩ. Adam's normalisation tends to |g*|, with
# g* = −2λΩ(θ − θ*) ≠ 0 the loss gradient at the fixed point, so Adam converges linearly here at a
# constant lr (it oscillates with amplitude ~lr only where g* → 0, that is without a penalty).
RUNS = {
    "sgd": (lambda ps: torch.optim.SGD(ps, lr=0.2, foreach=True), 300),
    "momentum": (lambda ps: torch.optim.SGD(ps, lr=0.2, momentum=0.9, foreach=True), 600),
    "adam": (lambda ps: torch.optim.Adam(ps, lr=0.05, foreach=True), 1000),
}
LAMBDA_OMEGA = (1e-3, 1e-1, 1e1, 1e3, 1e6)


def quadratic(omega_scale: float, seed: int = 0) -> dict[str, list[torch.Tensor]]:
    """a in [0.5, 2], b and θ* standard normal, Ω = omega_scale · [0.5, 2], all float64."""
    g = torch.Generator().manual_seed(seed)

    def uniform(shape: tuple[int, ...]) -> torch.Tensor:
        return 0.5 + 1.5 * torch.rand(*shape, generator=g, dtype=torch.float64)

    def normal(shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    return {
        "a": [uniform(s) for s in SHAPES], "b": [normal(s) for s in SHAPES],
        "theta_star": [normal(s) for s in SHAPES], "omega": [omega_scale * uniform(s) for s in SHAPES],
    }


def train_to_stationarity(
    problem: dict[str, list[torch.Tensor]], make_optimizer, steps: int, *,
    lam: float = 1.0, loss_scale: float = 1.0, form: str = "proximal",
) -> tuple[list[torch.Tensor], float]:
    """θ after `steps` steps of the training loop's sequence from θ*, and how far the last step moved
    it (max |Δθ|); fails as the loop does on a non-finite loss."""
    names = [f"p{i}" for i in range(len(SHAPES))]
    params = {n: torch.nn.Parameter(t.clone()) for n, t in zip(names, problem["theta_star"], strict=True)}
    method = make_method(
        "mas", lam=lam, theta_star=dict(zip(names, problem["theta_star"], strict=True)),
        omega=dict(zip(names, problem["omega"], strict=True)), form=form,
    )
    optimizer = make_optimizer(list(params.values()))
    method.begin_task(None, "t", params, optimizer.param_groups[0]["lr"], None)
    for step in range(steps):
        loss = loss_scale * sum(
            (a * (p - b) ** 2).sum() for a, p, b in zip(problem["a"], params.values(), problem["b"], strict=True)
        )
        if not math.isfinite(float(loss.detach())):
            raise NonFiniteLoss(f"the loss became {float(loss.detach())} at step {step + 1}")
        before = [p.detach().clone() for p in params.values()]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        method.before_step()
        optimizer.step()
        method.after_step(optimizer)
    theta = [p.detach().clone() for p in params.values()]
    return theta, max(float((t - b).abs().max()) for t, b in zip(theta, before, strict=True))


def assert_minimiser(
    theta: list[torch.Tensor], problem: dict[str, list[torch.Tensor]], lam: float = 1.0, loss_scale: float = 1.0
) -> None:
    for p, a, b, star, omega in zip(theta, problem["a"], problem["b"], problem["theta_star"], problem["omega"],
                                    strict=True):
        curvature, anchor = loss_scale * a, lam * omega
        minimiser = (curvature * b + anchor * star) / (curvature + anchor)
        scale = torch.minimum((minimiser - star).abs(), (minimiser - b).abs())
        error = float(((p - minimiser).abs() / scale).max())
        assert error < RTOL, f"stationary θ is {error:.2e} (relative) from the minimiser"


@pytest.mark.parametrize("lambda_omega", LAMBDA_OMEGA)
@pytest.mark.parametrize("optimizer", list(RUNS))
def test_the_stationary_theta_is_the_minimiser_of_loss_plus_penalty(optimizer: str, lambda_omega: float) -> None:
    make_optimizer, steps = RUNS[optimizer]
    problem = quadratic(lambda_omega)
    theta, last_move = train_to_stationarity(problem, make_optimizer, steps)
    assert_minimiser(theta, problem)
    assert last_move < 1e-12  # stationary, not passing by


def test_lambda_is_read_with_the_omega_it_multiplies() -> None:
    """λ = 1e3 with Ω ~ 1 reaches the same θ as λ = 1 with Ω ~ 1e3: the prox sees only λΩ."""
    make_optimizer, steps = RUNS["momentum"]
    problem = quadratic(1.0)
    theta, _ = train_to_stationarity(problem, make_optimizer, steps, lam=1e3)
    assert_minimiser(theta, problem, lam=1e3)


def test_adam_fixed_point_follows_the_loss_scale() -> None:
    """Scaling L by 0.01 moves Adam's stationary θ towards θ* as the closed form says (a prox with
    η = lr ends where it did, since Adam's step does not see the scale)."""
    make_optimizer, steps = RUNS["adam"]
    problem = quadratic(1.0)
    full, _ = train_to_stationarity(problem, make_optimizer, steps)
    scaled, _ = train_to_stationarity(problem, make_optimizer, steps, loss_scale=0.01)
    assert_minimiser(full, problem)
    assert_minimiser(scaled, problem, loss_scale=0.01)
    for f, s, star in zip(full, scaled, problem["theta_star"], strict=True):
        assert ((s - star).abs() < 0.05 * (f - star).abs()).all()


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_where_the_gradient_form_diverges_the_prox_converges(optimizer: str) -> None:
    """2·lr·λΩ ≥ 2·0.2·500 = 200 ≫ 2: the explicit penalty step overshoots, the prox contracts."""
    make_optimizer, steps = RUNS[optimizer]
    problem = quadratic(1e3)
    with pytest.raises(NonFiniteLoss, match="loss became"):
        train_to_stationarity(problem, make_optimizer, steps, form="gradient")
    assert_minimiser(train_to_stationarity(problem, make_optimizer, steps)[0], problem)


@pytest.mark.parametrize("lambda_omega", [1e-3, 1e-1, 1.0])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_where_the_gradient_form_is_stable_both_forms_reach_the_same_theta(optimizer: str, lambda_omega: float) -> None:
    """The gradient form is the true gradient of L + λΣΩ(θ − θ*)², exact under every optimizer where
    it converges: an independent check of the prox's fixed point."""
    make_optimizer, steps = RUNS[optimizer]
    problem = quadratic(lambda_omega)
    assert_minimiser(train_to_stationarity(problem, make_optimizer, steps, form="gradient")[0], problem)


def test_each_parameter_group_brings_its_own_step_size() -> None:
    problem = quadratic(10.0)

    def make_optimizer(params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        groups = [{"params": params[:1], "lr": 0.1, "momentum": 0.5},
                  {"params": params[1:], "lr": 0.2, "momentum": 0.9, "nesterov": True}]
        return torch.optim.SGD(groups, lr=0.2, foreach=True)

    params = [torch.nn.Parameter(t.clone()) for t in problem["theta_star"]]
    assert effective_step_size(make_optimizer(params), params) == pytest.approx([0.1 / 0.5, 0.2 / 0.1])
    assert_minimiser(train_to_stationarity(problem, make_optimizer, 600)[0], problem)


def test_an_optimizer_of_unknown_step_size_is_refused() -> None:
    params = [torch.nn.Parameter(torch.zeros(3))]
    with pytest.raises(TypeError, match="gradient form"):
        effective_step_size(torch.optim.RMSprop(params), params)
