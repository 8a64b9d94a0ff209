"""app/mas/omega_shape.py: per-block scaling against a hand computation, the penalty's layer kinds on a small
attention block, the blend against the sum, and sequences: one whose reshaped Ω anchors nothing learns exactly as
fine-tuning does, and a blended one learns as the summed one until a third task has two earlier ones to weigh."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from app.mas.accumulation import TaskImportance
from app.mas.data import split_digits
from app.mas.networks import build_network
from app.mas.omega_shape import OmegaShape, block_of, kind_of, owners, per_block_scaled
from app.mas.sequence import TaskStep, learn_sequence
from app.mas.training import TrainConfig


def test_blocks_are_cut_after_the_first_number_or_at_the_module() -> None:
    assert block_of("trunk.encoder.layer.4.attention.self.query.weight") == "trunk.encoder.layer.4"
    assert block_of("trunk.blocks.15.0.conv.weight") == "trunk.blocks.15"
    assert block_of("trunk.0.weight") == "trunk.0"
    assert block_of("trunk.head.conv.weight") == "trunk.head.conv"


def test_per_block_scaling_gives_every_block_the_overall_mean_and_keeps_the_order_within_a_block() -> None:
    omega = {"t.0.w": torch.tensor([1.0, 3.0]), "t.0.b": torch.tensor([2.0]),
             "t.1.w": torch.tensor([10.0, 30.0]), "t.2.w": torch.zeros(3)}
    scaled = per_block_scaled(omega)
    overall = (1 + 3 + 2 + 10 + 30) / 8  # 8 elements; the zero block counts in the mean and stays zero
    torch.testing.assert_close(scaled["t.0.w"], torch.tensor([1.0, 3.0]) * overall / 2)  # block 0's mean: 2
    torch.testing.assert_close(scaled["t.0.b"], torch.tensor([2.0]) * overall / 2)
    torch.testing.assert_close(scaled["t.1.w"], torch.tensor([10.0, 30.0]) * overall / 20)
    assert torch.equal(scaled["t.2.w"], torch.zeros(3))
    assert torch.equal(omega["t.1.w"], torch.tensor([10.0, 30.0]))  # the input is left as it was


class _Layer(nn.Module):
    """A transformer layer's shape in miniature: attention with its own norm, then a feed-forward block."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.ModuleDict({"query": nn.Linear(4, 4), "norm": nn.LayerNorm(4)})
        self.intermediate = nn.Linear(4, 8)
        self.output_norm = nn.LayerNorm(4)


def test_the_penalty_keeps_only_the_chosen_kind_of_layer() -> None:
    net = nn.Module()
    net.layer = nn.ModuleList([_Layer()])
    omega = {name: torch.ones_like(p) for name, p in net.named_parameters()}
    modules = owners(net)
    assert {name: kind_of(name, modules[name]) for name in omega} == {
        "layer.0.attention.query.weight": "attention", "layer.0.attention.query.bias": "attention",
        "layer.0.attention.norm.weight": "norm", "layer.0.attention.norm.bias": "norm",
        "layer.0.intermediate.weight": "feed_forward", "layer.0.intermediate.bias": "feed_forward",
        "layer.0.output_norm.weight": "norm", "layer.0.output_norm.bias": "norm"}
    assert set(OmegaShape(penalize="attention").apply(omega, net)) == {
        "layer.0.attention.query.weight", "layer.0.attention.query.bias"}
    assert set(OmegaShape(penalize="feed_forward").apply(omega, net)) == {
        "layer.0.intermediate.weight", "layer.0.intermediate.bias"}
    assert len(OmegaShape(penalize="norm").apply(omega, net)) == 4
    assert OmegaShape().apply(omega, net) is omega
    with pytest.raises(ValueError, match="penalize"):
        OmegaShape(penalize="heads")
    with pytest.raises(ValueError, match="scaling"):
        OmegaShape(scaling="per_layer")
    with pytest.raises(ValueError, match="accumulation"):
        OmegaShape(accumulation="mean")


def test_the_shape_sums_the_tasks_by_default_and_blends_when_asked() -> None:
    net = nn.Linear(2, 1)
    first = TaskImportance({"weight": torch.tensor([[4.0, 0.0]])}, n=1)
    second = TaskImportance({"weight": torch.tensor([[0.0, 2.0]])}, n=1)
    third = TaskImportance({"weight": torch.tensor([[2.0, 2.0]])}, n=1)
    assert OmegaShape().total([first, second, third], net)["weight"].tolist() == [[6.0, 4.0]]
    # 0.25·first + 0.25·second + 0.5·third
    assert OmegaShape(accumulation="blend").total([first, second, third], net)["weight"].tolist() == [[2.0, 1.5]]


def _steps(method: str, shape: OmegaShape, lam: float) -> Iterator[TaskStep]:
    """Three split-digits tasks learned in order on a fresh small MLP (seed 0), one step of learn_sequence at a
    time (lazily: a step's network is read before the next task trains it)."""
    net = build_network({"kind": "mlp", "input_shape": [64], "hidden": [32]}, seed=0)
    config = TrainConfig(epochs=2, batch_size=32, lr=0.05, seed=0)
    return learn_sequence(split_digits(n_tasks=3, seed=0), net, method=method, lam=lam, config=config,
                          omega_shape=shape)


def test_a_mas_sequence_whose_shape_anchors_nothing_learns_as_fine_tuning_does() -> None:
    def matrix(method: str, shape: OmegaShape) -> list[dict[str, float]]:
        return [step.accuracy for step in _steps(method, shape, lam=100.0)]

    unanchored = matrix("mas", OmegaShape(penalize="norm"))  # an MLP has no norm: no parameter is anchored
    assert unanchored == matrix("finetune", OmegaShape())
    assert unanchored != matrix("mas", OmegaShape())  # at λ 100 MAS's own Ω holds the trunk


def test_a_blended_sequence_departs_from_the_summed_one_at_its_third_task() -> None:
    def trunks(shape: OmegaShape) -> list[dict[str, torch.Tensor]]:
        """The trunk's parameters after each task."""
        return [{name: p.detach().clone() for name, p in step.learned.net.named_parameters()
                 if name.startswith("trunk")} for step in _steps("mas", shape, lam=10.0)]

    summed, blended = trunks(OmegaShape()), trunks(OmegaShape(accumulation="blend"))
    for step in (0, 1):  # no earlier task, then one: its Ω whole under both rules
        assert all(torch.equal(summed[step][name], blended[step][name]) for name in summed[step])
    assert any(not torch.equal(summed[2][name], blended[2][name]) for name in summed[2])
