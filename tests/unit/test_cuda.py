"""A job's whole core path on a CUDA device: train each method, measure Ω, evaluate, against the CPU.

Skipped where torch sees no GPU (our CI machines have none): it runs on a GPU worker's host, and is
what would catch a tensor left on the CPU (the cause of a failed job on a GPU worker). The CPU run
of the same steps is the reference: the same seed gives the same result up to float rounding.
"""

from __future__ import annotations

import pytest
import torch

from app.mas.devices import to_cpu, to_device
from app.mas.evaluation import accuracy
from app.mas.learn import MethodChoice, learn_task
from app.mas.methods import METHODS
from app.mas.networks import build_network, network_state
from app.mas.training import TrainConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")

ARCHITECTURES = {
    "mlp": {"kind": "mlp", "input_shape": [16], "hidden": [12]},
    "linear": {"kind": "mlp", "input_shape": [16], "hidden": []},  # no trunk parameters at all
    "cnn": {"kind": "cnn", "input_shape": [1, 6, 6], "channels": [3], "hidden": [8]},
}


def _two_tasks(device: torch.device, architecture: dict, method: str) -> tuple[dict, dict, float]:
    """Task a with MAS, then task b with `method` anchored on a's θ and Ω; θ, Ω and b's accuracy."""
    generator = torch.Generator().manual_seed(0)
    shape = architecture["input_shape"]
    x = torch.randn(64, *shape, generator=generator).to(device)
    y = (x.flatten(1)[:, 0] > 0).long()
    net = build_network(architecture, seed=0).to(device)
    config = TrainConfig(epochs=2, batch_size=16, lr=0.05, momentum=0.9, seed=0)
    first = learn_task(net, "a", 2, x, y, method=MethodChoice(), theta_star={}, omega={}, config=config)
    theta = to_device(to_cpu(network_state(net)), device)
    second = learn_task(net, "b", 2, x, 1 - y, method=MethodChoice(method), theta_star=theta,
                        omega=to_device(to_cpu(first.estimate.mean()), device), config=config)
    return to_cpu(network_state(net)), to_cpu(second.estimate.sums), accuracy(net, "b", x, 1 - y)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_a_job_on_cuda_matches_the_cpu(name: str, method: str) -> None:
    on_gpu = _two_tasks(torch.device("cuda"), ARCHITECTURES[name], method)
    on_cpu = _two_tasks(torch.device("cpu"), ARCHITECTURES[name], method)
    for gpu_tensors, cpu_tensors in zip(on_gpu[:2], on_cpu[:2], strict=True):
        assert gpu_tensors.keys() == cpu_tensors.keys()
        for key in cpu_tensors:
            assert gpu_tensors[key].device.type == "cpu"
            torch.testing.assert_close(gpu_tensors[key], cpu_tensors[key], rtol=1e-3, atol=1e-4)
    assert on_gpu[2] == pytest.approx(on_cpu[2], abs=0.05)


def _zoo_net() -> tuple:
    """A network with a depthwise convolution (multiplier 2, stride 2), a grouped one and batch norm."""
    from torch import nn

    from app.mas.networks import InputSpec, MultiHeadNet

    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                          nn.Conv2d(6, 12, 3, stride=2, padding=1, groups=6), nn.Conv2d(12, 12, 1, groups=3),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten())
    net = MultiHeadNet(trunk, 12, InputSpec((3, 9, 9)))
    net.add_head("a", 5, seed=0)
    with torch.no_grad():
        net.trunk[1].running_mean.uniform_(-0.5, 0.5)
        net.trunk[1].running_var.uniform_(0.5, 2.0)
    return net.eval(), torch.randn(40, 3, 9, 9, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("form", ["grouped", "shifted"])
def test_exact_importance_on_cuda_matches_the_cpu_in_both_depthwise_forms(form: str, monkeypatch) -> None:
    from app.mas import per_sample_layers
    from app.mas.importance import estimate_importance

    net, x = _zoo_net()
    on_cpu = estimate_importance(net, "a", x).sums
    monkeypatch.setitem(per_sample_layers.DEPTHWISE_FORM, "cuda", form)
    on_gpu = estimate_importance(net.to("cuda"), "a", x.to("cuda")).sums
    for name, value in on_cpu.items():
        torch.testing.assert_close(on_gpu[name].cpu(), value, rtol=1e-4, atol=1e-6)


def test_activation_budget_is_a_share_of_the_free_gpu_memory() -> None:
    from app.mas.devices import CPU_ACTIVATION_BUDGET, GPU_FREE_SHARE, activation_budget

    free, _ = torch.cuda.mem_get_info()
    budget = activation_budget(torch.device("cuda"))
    assert 0.9 * GPU_FREE_SHARE * free <= budget <= GPU_FREE_SHARE * (free + torch.cuda.memory_reserved()) + 1
    assert activation_budget(torch.device("cpu")) == CPU_ACTIVATION_BUDGET


def test_predictions_on_cuda_in_bf16_match_fp32_on_the_cpu() -> None:
    from app.predictions.service import forward

    net, x = _zoo_net()
    classes_cpu, probs_cpu = forward(net=net, task="a", x=x, probabilities=True)
    on_gpu = net.to("cuda")
    classes_gpu, probs_gpu = forward(net=on_gpu, task="a", x=x, probabilities=True)
    assert probs_gpu.device.type == "cpu" and probs_gpu.dtype == torch.float32
    torch.testing.assert_close(probs_gpu, probs_cpu, rtol=0, atol=2e-2)  # bf16 keeps 8 bits of mantissa
    margin = probs_cpu.topk(2).values
    clear = (margin[:, 0] - margin[:, 1]) > 0.05  # a near tie may flip under bf16 rounding
    assert torch.equal(classes_gpu[clear], classes_cpu[clear])


def test_text_trunk_takes_large_passes_on_a_gpu_and_small_ones_on_a_cpu() -> None:
    from app.architectures.text import GPU_INFERENCE_BATCH, TextEncoderTrunk, inference_rows

    assert inference_rows(torch.zeros(2, 3, device="cuda")) == GPU_INFERENCE_BATCH
    assert inference_rows(torch.zeros(2, 3)) == TextEncoderTrunk.INFERENCE_BATCH
