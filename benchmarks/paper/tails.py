"""Frozen trunks computed once: a pretrained network cut into its frozen head part and its trainable tail.

With `trainable: {"last": N}`, a model's first blocks never change (MAS.md §6: no gradient, no Ω, no
penalty, eval-mode batch norm and dropout), so their output on a given input is the same in every
version, every method and every seed. The benchmark computes it once per dataset (`frozen_features`)
and trains a MultiHeadNet whose trunk is only the tail (the last N blocks, then the pooling the kind
does), with an input spec of the cached activation's shape. Everything `learn_task` does then runs
on the tail exactly as it would on the whole network: the same trainable parameters in the same order,
the same dropout draws (frozen blocks draw none), the same Ω; only the frozen part's floating-point
rounding can differ, by the batches it was computed in (tests/benchmarks/test_paper_smoke.py checks
outputs and Ω against the whole network).

- text-encoder: the cached activation is the hidden states entering the first trained layer,
  [n, max_length, hidden], with the attention mask packed as one more channel ([n, T, hidden + 1]),
  padding positions zero. The tail cuts columns that are padding in every row of a batch, as the
  whole trunk does, and pools and normalises as it does.
- image-backbone: the activation entering the first trained MBConv block (or the head convolution),
  [n, C, h, w].
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as functional
from torch import Tensor, nn

from app.architectures import build_network, get_architecture
from app.architectures.text import TextEncoderTrunk, in_length_order
from app.mas.networks import InputSpec, MultiHeadNet

FEATURE_BATCH = 64  # rows per pass of the frozen part


class TextTail(nn.Module):
    """The last encoder layers of a TextEncoderTrunk, on packed hidden states [n, T, hidden + 1 (mask)]."""

    INFERENCE_BATCH = TextEncoderTrunk.INFERENCE_BATCH

    def __init__(self, layers: nn.ModuleList, normalize: bool):
        super().__init__()
        self.layers = layers
        self.normalize = normalize

    def forward(self, packed: Tensor) -> Tensor:
        """As TextEncoderTrunk.forward: without gradients, passes of 16 rows of similar length."""
        return in_length_order(self._encode, packed, packed[..., -1].sum(1), self.INFERENCE_BATCH)

    def _encode(self, packed: Tensor) -> Tensor:
        packed = self._without_padding_columns(packed)
        hidden, mask = packed[..., :-1], packed[..., -1] > 0.5
        additive = (~mask)[:, None, None, :].to(hidden.dtype) * torch.finfo(hidden.dtype).min
        for layer in self.layers:
            TextEncoderTrunk._sync_attention_dropout(layer)
            hidden = layer(hidden, additive)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return functional.normalize(pooled, p=2, dim=1) if self.normalize else pooled

    @staticmethod
    def _without_padding_columns(packed: Tensor) -> Tensor:
        try:
            used = (packed[..., -1] > 0.5).any(0).nonzero()
            keep = int(used.max()) + 1 if used.numel() else 1
        except RuntimeError:  # inside vmap (the fallback Ω path): nothing is cut
            return packed
        return packed[:, :keep] if keep < packed.shape[1] else packed


class ImageTail(nn.Module):
    """The last MBConv blocks and/or the head convolution of an EfficientNetLiteTrunk, then its pooling."""

    def __init__(self, blocks: nn.ModuleList, head: nn.Module, pool: nn.Module, flatten: nn.Module):
        super().__init__()
        self.blocks = blocks
        self.head = head
        self.pool = pool
        self.flatten = flatten

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return self.flatten(self.pool(self.head(x)))


def _text_frozen(trunk: TextEncoderTrunk, first_trained: int, max_length: int) -> Callable[[Tensor], Tensor]:
    def run(ids: Tensor) -> Tensor:
        cut = TextEncoderTrunk._without_padding_columns(trunk, ids)
        mask = cut != trunk.pad_id
        hidden = trunk.embeddings(input_ids=cut, token_type_ids=torch.zeros_like(cut))
        additive = (~mask)[:, None, None, :].to(hidden.dtype) * torch.finfo(hidden.dtype).min
        for layer in list(trunk.layers)[:first_trained]:
            out = layer(hidden, additive)
            hidden = out[0] if isinstance(out, tuple) else out
        packed = torch.zeros(ids.shape[0], max_length, hidden.shape[-1] + 1)
        packed[:, : cut.shape[1], :-1] = hidden * mask.unsqueeze(-1)
        packed[:, : cut.shape[1], -1] = mask.float()
        return packed
    return run


def _image_frozen(trunk: nn.Module, first_trained: int) -> Callable[[Tensor], Tensor]:
    def run(images: Tensor) -> Tensor:
        x = trunk.stem(images)
        for block in list(trunk.blocks)[:first_trained]:
            x = block(x)
        return x
    return run


@dataclass
class SplitNetwork:
    """A pretrained kind cut at its trainable blocks: the whole network, its frozen part as a function,
    and a template tail network (deep-copied for every run: each run starts from the pretrained θ)."""

    spec: dict
    whole: MultiHeadNet
    frozen: Callable[[Tensor], Tensor]
    tail: MultiHeadNet

    def fresh_tail(self) -> MultiHeadNet:
        return copy.deepcopy(self.tail)

    def preprocess(self, raw: list) -> Tensor:
        return get_architecture(self.spec["kind"]).preprocess(self.spec, raw)

    def features(self, inputs: Tensor, batch: int = FEATURE_BATCH, device: str = "cpu") -> Tensor:
        """The frozen part's output on preprocessed inputs, in eval mode, without gradients (computed on
        `device`, returned on the CPU)."""
        self.whole.to(device).eval()
        if inputs.shape[0] == 0:
            return torch.zeros(0, *self.tail.input_shape)
        # Texts of similar length together: each pass is cut to its longest text.
        order = (inputs != self.whole.trunk.pad_id).sum(1).argsort() if inputs.dtype == torch.int64 \
            else torch.arange(inputs.shape[0])
        with torch.inference_mode():
            parts = [self.frozen(inputs[order[i : i + batch]].to(device)).cpu()
                     for i in range(0, inputs.shape[0], batch)]
        features = torch.empty(inputs.shape[0], *parts[0].shape[1:])
        features[order] = torch.cat(parts)
        return features


def split_network(spec: dict) -> SplitNetwork:
    """Build the pretrained kind (as version 0 of a model with this spec) and cut it at `trainable.last`."""
    whole = build_network(spec, seed=0)
    last = whole.architecture["trainable"]["last"]
    trunk = whole.trunk
    if whole.architecture["kind"] == "text-encoder":
        layers = len(trunk.layers)
        if not 1 <= last <= layers:
            raise ValueError(f"a cached text tail trains 1 to {layers} encoder layers, not {last} blocks")
        first = layers - last
        tail: nn.Module = TextTail(nn.ModuleList(list(trunk.layers)[first:]), trunk.normalize)
        max_length = whole.architecture["max_length"]
        frozen = _text_frozen(trunk, first, max_length)
        shape = (max_length, int(trunk.embeddings.word_embeddings.embedding_dim) + 1)
    else:
        n_blocks = len(trunk.blocks)
        if not 1 <= last <= n_blocks + 1:
            raise ValueError(f"a cached image tail trains 1 to {n_blocks + 1} blocks, not {last}")
        first = n_blocks + 1 - last
        tail = ImageTail(nn.ModuleList(list(trunk.blocks)[first:]), trunk.head, trunk.pool, trunk.flatten)
        frozen = _image_frozen(trunk, first)
        size = whole.architecture["image_size"]
        with torch.inference_mode():
            whole.eval()
            shape = tuple(frozen(torch.zeros(1, 3, size, size)).shape[1:])
    net = MultiHeadNet(copy.deepcopy(tail), whole.feature_dim, InputSpec(tuple(shape), torch.float32))
    net.architecture = {"kind": f"{whole.architecture['kind']}-tail", "of": whole.architecture}
    return SplitNetwork(whole.architecture, whole, frozen, net)
