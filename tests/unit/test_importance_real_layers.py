"""Exact per-sample Ω on the layers of real networks (MAS.md §6) against slow loops of single-sample
backward passes: a tiny random BERT (embeddings, layer norm, linear layers on sequences, the pooler)
and EfficientNet-Lite0 with random weights (depthwise and pointwise convolutions, eval-mode batch norm).

The Embedding rule never builds a [batch, vocab, dim] tensor by construction (one row per distinct
(sample, token) pair, see per_sample_layers._embedding_sums); that is not something a test can see.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as functional
from torch import Tensor, nn

from app.mas import per_sample_layers
from app.mas.importance import estimate_importance, fallback_parameters, squared_gradient_sums
from app.mas.networks import InputSpec, MultiHeadNet
from tests.unit.conftest import sample_inputs, with_heads


class BertTrunk(nn.Module):
    """Token ids [n, T] (0 = padding) → mean of the last states over real tokens, plus the pooler's output."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=37, max_position_embeddings=16, type_vocab_size=2)
        self.bert = BertModel(config)

    def forward(self, ids: Tensor) -> Tensor:
        mask = ids != 0
        out = self.bert(input_ids=ids, attention_mask=mask.long())
        weights = mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        return (out.last_hidden_state * weights).sum(1) / weights.sum(1) + out.pooler_output


class EfficientNetTrunk(nn.Module):
    """EfficientNet-Lite0's pooled features before its classifier (its convolutions pad inside forward)."""

    def __init__(self, image_size: int) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
        self.net._fc = None  # the ImageNet classifier is not part of the trunk

    def forward(self, x: Tensor) -> Tensor:
        return self.net._avg_pooling(self.net.extract_features(x)).flatten(1)


def bert_net() -> MultiHeadNet:
    torch.manual_seed(0)
    net = with_heads(MultiHeadNet(BertTrunk(), 32, InputSpec((12,), torch.int64)), {"a": 3})
    return net.double().eval()


def token_ids() -> Tensor:
    ids = torch.randint(1, 100, (5, 12), generator=torch.Generator().manual_seed(1))
    for row, length in enumerate([12, 9, 5, 2, 7]):
        ids[row, length:] = 0
    ids[1, :4] = 7  # a token repeated inside one sample: its rows sum over positions before |·|
    ids[2, 0] = 7
    return ids


def efficientnet_net() -> MultiHeadNet:
    torch.manual_seed(0)
    net = with_heads(MultiHeadNet(EfficientNetTrunk(32), 1280, InputSpec((3, 32, 32))), {"a": 3})
    with torch.no_grad():  # non-trivial running statistics, so that x̂ differs from the input
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return net.eval()  # float32: float64 convolutions have no fast kernel and take seconds here


def slow_loop(net: MultiHeadNet, task: str, x: Tensor, per_sample: str = "abs", labels: Tensor | None = None) -> dict:
    """Σ_k f(∂objective(x_k)/∂θ) over the task's parameters, one sample and one backward at a time."""
    params = net.task_parameters(task)
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for k in range(x.shape[0]):
        logits = net(x[k : k + 1], task)
        if labels is None:
            objective = logits.square().sum()
        else:
            objective = functional.cross_entropy(logits, labels[k : k + 1], reduction="sum")
        grads = torch.autograd.grad(objective, list(params.values()))
        for n, g in zip(params, grads, strict=True):
            total[n] += g.abs() if per_sample == "abs" else g.square()
    return total


def assert_close(actual: dict, expected: dict, rtol: float = 1e-4, atol_of_max: float = 1e-9) -> None:
    """rtol per entry; atol relative to the tensor's largest entry (rounding of entries near 0), or to a
    thousandth of the network's largest where a tensor is zero in exact arithmetic (BERT's key biases)."""
    assert actual.keys() == expected.keys()
    largest = max(float(t.abs().max()) for t in expected.values())
    for name in expected:
        atol = atol_of_max * max(float(expected[name].abs().max()), 1e-3 * largest)
        torch.testing.assert_close(actual[name], expected[name], rtol=rtol, atol=atol, msg=name)


def test_bert_every_parameter_equals_the_slow_loop() -> None:
    net, ids = bert_net(), token_ids()
    result = estimate_importance(net, "a", ids, chunk_size=4)
    assert result.fallback == ()
    expected = slow_loop(net, "a", ids)
    assert {"trunk.bert.embeddings.position_embeddings.weight", "trunk.bert.pooler.dense.weight"} <= expected.keys()
    assert_close(result.sums, expected)


def test_bert_frozen_blocks_are_absent_and_the_rest_still_match() -> None:
    net, ids = bert_net(), token_ids()
    prefixes = ("trunk.bert.embeddings.", "trunk.bert.encoder.layer.0.")
    frozen = {n for n, _ in net.named_parameters() if n.startswith(prefixes)}
    net.freeze(frozen)
    result = estimate_importance(net, "a", ids)
    assert not frozen & result.sums.keys()
    assert_close(result.sums, slow_loop(net, "a", ids))


def test_bert_vector_output_equals_a_slow_jacobian_loop() -> None:
    net, ids = bert_net(), token_ids()[:3]
    params = net.task_parameters("a")
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    for k in range(ids.shape[0]):
        logits = net(ids[k : k + 1], "a")[0]
        rows = [torch.autograd.grad(logits[c], list(params.values()), retain_graph=True) for c in range(3)]
        for i, n in enumerate(params):
            expected[n] += torch.stack([row[i] for row in rows]).norm(dim=0)  # ‖∂F(x_k)/∂θ‖₂ over outputs
    assert_close(estimate_importance(net, "a", ids, output="vector").sums, expected)


def test_bert_fisher_equals_a_slow_loop_of_squared_log_loss_gradients() -> None:
    net, ids = bert_net(), token_ids()
    labels = torch.tensor([0, 2, 1, 1, 0])
    result = squared_gradient_sums(net, "a", ids, labels, chunk_size=3)
    assert_close(result.sums, slow_loop(net, "a", ids, "square", labels))


@pytest.fixture(params=["grouped", "shifted"])
def depthwise_form(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both exact forms of a depthwise convolution's per-sample gradients (each device picks one)."""
    monkeypatch.setitem(per_sample_layers.DEPTHWISE_FORM, "cpu", request.param)
    return request.param


def test_efficientnet_every_parameter_equals_the_slow_loop(depthwise_form: str) -> None:
    net = efficientnet_net()
    x = sample_inputs(net, 3)
    result = estimate_importance(net, "a", x)
    assert result.fallback == ()
    assert_close(result.sums, slow_loop(net, "a", x), atol_of_max=1e-5)


class Scaled(nn.Module):
    """A layer with no per-sample rule: a raw parameter multiplied into the features."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, width))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


@pytest.mark.parametrize("shared", [False, True])
def test_fallback_names_exactly_the_parameters_without_a_rule(shared: bool) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(6, 6)
    trunk = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), Scaled(6), linear, nn.Tanh(), linear if shared else nn.Identity())
    net = with_heads(MultiHeadNet(trunk, 6, InputSpec((5,), torch.float64)), {"a": 2}).double()
    x = sample_inputs(net, 7).double()
    result = estimate_importance(net, "a", x, chunk_size=4)
    assert result.fallback == ("trunk.2.scale",)
    assert fallback_parameters(net, "a", x) == ["trunk.2.scale"]
    assert_close(result.sums, slow_loop(net, "a", x))  # a weight used twice sums its calls per sample


class Zoo(nn.Module):
    """Grouped 'same' and depthwise (multiplier 2, reflect padding; dilated) convolutions, an in-place ReLU
    on a convolution's output, eval-mode batch norm, and a layer norm applied twice."""

    def __init__(self) -> None:
        super().__init__()
        self.grouped = nn.Conv2d(4, 6, 3, padding="same", groups=2)
        self.bn = nn.BatchNorm2d(6)
        self.depthwise = nn.Conv2d(6, 12, 3, stride=2, padding=1, groups=6, padding_mode="reflect")
        self.dilated = nn.Conv2d(12, 12, (3, 2), padding=(2, 1), dilation=2, groups=12)
        self.norm = nn.LayerNorm(12)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(torch.relu_(self.grouped(x)))
        return self.norm(self.norm(self.dilated(self.depthwise(x)).mean((2, 3))))


def test_grouped_convolutions_in_place_activations_and_shared_norms_stay_exact(depthwise_form: str) -> None:
    torch.manual_seed(0)
    net = with_heads(MultiHeadNet(Zoo(), 12, InputSpec((4, 7, 6), torch.float64)), {"a": 3}).double().eval()
    x = sample_inputs(net, 6).double()
    result = estimate_importance(net, "a", x, chunk_size=4)
    assert result.fallback == ()
    assert_close(result.sums, slow_loop(net, "a", x))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    assert_close(squared_gradient_sums(net, "a", x, labels).sums, slow_loop(net, "a", x, "square", labels))
