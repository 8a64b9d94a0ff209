"""θ and Ω on disk: safetensors bytes, which round-trip bit for bit and cannot execute code."""

from __future__ import annotations

from safetensors.torch import load as _load
from safetensors.torch import save as _save
from torch import Tensor


def tensors_to_bytes(tensors: dict[str, Tensor]) -> bytes:
    """Deterministic bytes for equal tensors (safetensors sorts keys), so a content hash names them."""
    return _save({name: t.detach().contiguous().cpu() for name, t in tensors.items()})


def tensors_from_bytes(data: bytes) -> dict[str, Tensor]:
    return _load(data)
