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
