"""Which torch device a worker trains on, and moving a job's tensors there and back.

A worker picks its device once, at start: "auto" takes the GPU when torch sees one, so the same
image runs on a GPU host and a CPU host. Everything a job stores (θ, Ω) comes back to the CPU first,
so blobs never depend on the device that wrote them.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor


def pick_device(name: str = "auto") -> torch.device:
    """The device named ("cpu", "cuda", "cuda:1", "mps"), or for "auto" cuda when present, else cpu.

    Naming a device that this machine lacks is an error at worker start, not a silent CPU run. The
    question is asked through NVML, not the CUDA runtime: the worker's main process asks it, and a
    process that has initialised CUDA cannot fork pool processes that use it.
    """
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"not a torch device: {name!r}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' asked for, but torch sees no Apple GPU")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {name!r}: a worker trains on cpu, cuda or mps")
    return device


CPU_ACTIVATION_BUDGET = 2 << 30  # bytes of activations one chunk of a per-sample measurement may hold on a CPU
GPU_FREE_SHARE = 0.4  # the share of a GPU's free memory one such chunk may take (the rest: θ, Ω, the allocator)


def activation_budget(device: torch.device) -> int:
    """Bytes that one chunk of work on `device` may hold in activations.

    On a CPU a fixed 2 GiB, which keeps a chunk in reach of the caches and leaves the host room. On a
    GPU a share of the memory free now: a GPU is fast only with large chunks (per-chunk host work, the
    Python of recording layer calls, is the same for 16 rows as for 2,048), and its memory is the
    only limit. The free memory is read at each call, so a worker that shares its GPU takes what is left.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # free to torch too
        return int((free + cached) * GPU_FREE_SHARE)
    return CPU_ACTIVATION_BUDGET


def device_of(module: torch.nn.Module) -> torch.device:
    """The device of a module's parameters (the CPU for a module without any)."""
    first = next(module.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def to_device(tensors: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {name: tensor.to(device) for name, tensor in tensors.items()}


def to_cpu(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {name: tensor.detach().cpu() for name, tensor in tensors.items()}
