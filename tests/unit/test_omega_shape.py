"""app/mas/omega_shape.py: per-block scaling against a hand computation, the penalty's layer kinds on a small
attention block, and a sequence whose reshaped Ω anchors nothing learning exactly as fine-tuning does."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from app.mas.data import split_digits
from app.mas.networks import build_network
from app.mas.omega_shape import OmegaShape, block_of, kind_of, owners, per_block_scaled
from app.mas.sequence import learn_sequence
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


def test_a_mas_sequence_whose_shape_anchors_nothing_learns_as_fine_tuning_does() -> None:
    tasks = split_digits(n_tasks=3, seed=0)
    config = TrainConfig(epochs=2, batch_size=32, lr=0.05, seed=0)

    def matrix(method: str, shape: OmegaShape) -> list[dict[str, float]]:
        net = build_network({"kind": "mlp", "input_shape": [64], "hidden": [32]}, seed=0)
        return [step.accuracy for step in learn_sequence(tasks, net, method=method, lam=100.0, config=config,
                                                         omega_shape=shape)]

    unanchored = matrix("mas", OmegaShape(penalize="norm"))  # an MLP has no norm: no parameter is anchored
    assert unanchored == matrix("finetune", OmegaShape())
    assert unanchored != matrix("mas", OmegaShape())  # at λ 100 MAS's own Ω holds the trunk
