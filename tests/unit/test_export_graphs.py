"""The export graphs on networks built here: a plugin's trunk exports as it is (and matches in onnxruntime),
and a forward that branches on its inputs' values, or cannot be traced at all, is refused with the reason
rather than exported wrong."""

from __future__ import annotations

import io

import numpy as np
import onnxruntime
import pytest
import torch
from torch import Tensor, nn

from app.export.graphs import ExportRefused, task_graph, to_onnx, to_torchscript
from app.mas.networks import InputSpec, MultiHeadNet, build_network


class Branching(nn.Module):
    """Python control flow on the input (here its batch size): a trace records one branch only."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x) if x.shape[0] % 2 == 0 else -self.linear(x)


class Untraceable(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return {"features": x}  # a dict where a tensor is due


def _net(trunk: nn.Module, width: int) -> MultiHeadNet:
    torch.manual_seed(0)
    net = MultiHeadNet(trunk, width, InputSpec((4,)))
    net.add_head("t", 3, seed=0)
    return net.eval()


def test_a_plugin_trunk_exports_its_own_input_and_matches_in_onnxruntime() -> None:
    net = _net(nn.Sequential(nn.Linear(4, 8), nn.Tanh()), 8)
    graph = task_graph(net, "t", "some-plugin")
    assert [(i.name, i.dtype, i.shape) for i in graph.inputs] == [("input", "float32", ["batch", 4])]
    x = torch.randn(5, 4)
    with torch.no_grad():
        expected = net(x, "t")
    session = onnxruntime.InferenceSession(to_onnx(graph, {"task": "t"}), providers=["CPUExecutionProvider"])
    logits, probabilities = session.run(None, {"input": x.numpy()})
    assert np.abs(logits - expected.numpy()).max() <= 1e-5
    assert np.abs(probabilities - expected.softmax(1).numpy()).max() <= 1e-6
    scripted = torch.jit.load(io.BytesIO(to_torchscript(graph, {"task": "t"})))
    assert torch.allclose(scripted(x)[0], expected, atol=1e-6)


def test_the_array_graph_reshapes_flat_rows_for_a_cnn() -> None:
    net = build_network({"kind": "cnn", "input_shape": [2, 4, 4], "channels": [3], "hidden": [5]}, seed=0)
    net.add_head("t", 2, seed=1)
    graph = task_graph(net.eval(), "t", "cnn")
    x = torch.randn(3, 2, 4, 4)
    with torch.no_grad():
        assert torch.allclose(graph.module(x.reshape(3, -1))[0], net(x, "t"))


@pytest.mark.parametrize("export", [to_onnx, to_torchscript])
def test_a_forward_that_branches_on_its_input_is_refused(export) -> None:
    graph = task_graph(_net(Branching(), 3), "t", "branching")
    with pytest.raises(ExportRefused, match="does not reproduce the network on other inputs"):
        export(graph, {})


@pytest.mark.parametrize("export", [to_onnx, to_torchscript])
def test_a_forward_that_cannot_be_traced_is_refused_with_the_reason(export) -> None:
    graph = task_graph(_net(Untraceable(), 4), "t", "untraceable")
    with pytest.raises(ExportRefused, match="cannot be traced"):
        export(graph, {})


def test_an_unknown_head_is_refused() -> None:
    with pytest.raises(ExportRefused, match="no head 'other'"):
        task_graph(_net(nn.Identity(), 4), "other", "mlp")
