"""app/mas/passes.py: inference passes sized by the activations they hold, measured once per network and shape."""

from __future__ import annotations

import pytest
import torch

from app.mas import passes
from app.mas.class_statistics import features
from app.mas.evaluation import task_logits
from app.mas.networks import MultiHeadNet, build_network
from tests.unit.conftest import with_heads


def _mlp(hidden: list[int]) -> MultiHeadNet:
    return with_heads(build_network({"kind": "mlp", "input_shape": [6], "hidden": hidden}, seed=0), {"t": 3})


def test_the_widest_layer_output_of_one_row_is_measured() -> None:
    # Linear 6→1000 and its ReLU give 1,000 float32 per row, the widest: 4,000 bytes.
    assert passes.widest_output_bytes(_mlp([1000, 8]), torch.zeros(50, 6)) == 1000 * 4
    # A CNN's widest: the first convolution's 4 channels over the 6×6 image (padding keeps the size).
    cnn = build_network({"kind": "cnn", "input_shape": [1, 6, 6], "channels": [4], "hidden": [8]}, seed=0)
    assert passes.widest_output_bytes(cnn, torch.zeros(3, 1, 6, 6)) == 4 * 6 * 6 * 4


def test_rows_fit_the_budget_at_four_times_the_widest_output_per_row(monkeypatch: pytest.MonkeyPatch) -> None:
    net = _mlp([1000, 8])
    monkeypatch.setattr(passes, "CPU_PASS_BUDGET", 10 * 4 * 4000 + 1)
    assert passes.rows_per_pass(net, torch.zeros(500, 6)) == 10
    monkeypatch.setattr(passes, "CPU_PASS_BUDGET", 1)
    assert passes.rows_per_pass(net, torch.zeros(500, 6)) == 1  # never fewer than one row
    monkeypatch.setattr(passes, "CPU_PASS_BUDGET", 1 << 40)
    assert passes.rows_per_pass(net, torch.zeros(500, 6)) == passes.MAX_ROWS
    monkeypatch.setattr(passes, "MAX_INPUT_BYTES", 6 * 4 * 7)
    assert passes.rows_per_pass(net, torch.zeros(500, 6)) == 7  # the inputs' own bound still holds
    assert passes.rows_per_pass(net, torch.zeros(0, 6)) == passes.MAX_ROWS


def test_each_network_and_input_shape_is_probed_once_and_left_as_it_was() -> None:
    net = _mlp([16, 8])
    calls: list[int] = []
    net.trunk.register_forward_hook(lambda _, inputs, __: calls.append(inputs[0].shape[0]))
    net.train()
    x = torch.randn(40, 6)
    for _ in range(3):
        passes.rows_per_pass(net, x)
    assert calls == [1]  # one row, once
    assert net.training and net.trunk.training
    assert not any(module._forward_hooks for module in net.trunk.modules() if module is not net.trunk)
    passes.rows_per_pass(_mlp([16, 8]), x)  # another network: probed on its own
    assert calls == [1]


def test_answers_in_many_passes_equal_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    net = _mlp([64, 32])
    x = torch.randn(53, 6)
    monkeypatch.setattr(passes, "CPU_PASS_BUDGET", 7 * 4 * 64 * 4)  # 7 rows a pass: 8 passes, the last of 4
    assert passes.rows_per_pass(net, x) == 7
    net.eval()  # rows are independent in eval mode: only the summation order of a product differs
    with torch.no_grad():
        whole_logits, whole_features = net(x, "t"), net.trunk(x)
    torch.testing.assert_close(task_logits(net, "t", x), whole_logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(features(net, x), whole_features, rtol=1e-5, atol=1e-6)
