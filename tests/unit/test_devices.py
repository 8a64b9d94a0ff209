"""The worker's device: "auto" follows what torch sees; a device this machine lacks is refused.

No GPU runs here, so torch's view of CUDA is patched for the cases that need one (the only mock:
a GPU cannot run on this machine).
"""

from __future__ import annotations

import pytest
import torch

from app.mas.devices import pick_device, to_cpu, to_device


def test_auto_is_cpu_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")


def test_auto_is_cuda_when_torch_sees_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("auto") == torch.device("cuda")
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="has 2 GPU"):
        pick_device("cuda:2")


@pytest.mark.parametrize(("name", "message"), [("cuda", "no CUDA GPU"), ("tpu", "not a torch device"),
                                                ("meta", "cpu, cuda or mps")])
def test_a_device_this_machine_cannot_train_on_is_refused(name: str, message: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=message):
        pick_device(name)


def test_tensors_go_to_the_device_and_come_back_detached() -> None:
    weight = torch.ones(3, requires_grad=True)
    moved = to_device({"w": weight * 2}, torch.device("cpu"))
    back = to_cpu(moved)
    assert back["w"].device.type == "cpu" and not back["w"].requires_grad
    assert torch.equal(back["w"], torch.full((3,), 2.0))
