"""Tiny random stand-ins for the pretrained kinds, for the benchmarks' smoke profiles.

A smoke profile runs every network kind and case its benchmark reports, in seconds, so that CI notices
when a case stops running (real_models' EfficientNet cases once failed for a week because the smoke test
ran a BERT only, which has no batch norm). The stand-ins are built from the same code as the real kinds
(app/architectures: `TextEncoderTrunk` around a `BertModel`, `EfficientNetLiteTrunk` around the package's
EfficientNet-Lite with depthwise convolutions and batch norms), with random weights and tiny widths, and
their trainable blocks are chosen by the kind's own `blocks` (so `{"last": 2}` means what it means there).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from app.architectures.base import normalise_trainable
from app.architectures.registry import get_architecture
from app.mas.networks import InputSpec, MultiHeadNet

TEXT_LENGTH = 12
IMAGE_SIZE = 16


def tiny_bert_trunk(seed: int = 0) -> tuple[torch.nn.Module, int, InputSpec]:
    """A 2-layer BERT of width 32 over a 100-word vocabulary, as the text-encoder kind wraps it."""
    from app.architectures.text import TextEncoderTrunk, _hide_broken_torchvision

    _hide_broken_torchvision()
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=16, attn_implementation="eager")
    trunk = TextEncoderTrunk(BertModel(config, add_pooling_layer=False), pad_id=0, normalize=True)
    return trunk, 32, InputSpec((TEXT_LENGTH,), torch.int64)


def tiny_efficientnet_trunk(seed: int = 0) -> tuple[torch.nn.Module, int, InputSpec]:
    """EfficientNet-Lite0 at a quarter of its width and depth (7 MBConv blocks, 0.19 M parameters), 16 px."""
    from efficientnet_lite_pytorch import EfficientNet

    from app.architectures.image import EfficientNetLiteTrunk

    torch.manual_seed(seed)
    network = EfficientNet.from_name("efficientnet-lite0", image_size=IMAGE_SIZE, width_coefficient=0.25,
                                     depth_coefficient=0.25)
    trunk = EfficientNetLiteTrunk(network)
    return trunk, trunk.head.conv.out_channels, InputSpec((3, IMAGE_SIZE, IMAGE_SIZE), torch.float32)


TRUNKS = {"text-encoder": tiny_bert_trunk, "image-backbone": tiny_efficientnet_trunk}


def tiny_network(spec: dict, seed: int = 0) -> MultiHeadNet:
    """A stand-in of `spec`'s kind, with the blocks `spec["trainable"]` names learning and the rest frozen."""
    with torch.random.fork_rng(devices=[]):
        net = MultiHeadNet(*TRUNKS[spec["kind"]](seed))
    blocks = get_architecture(spec["kind"]).blocks(spec, net.trunk)
    choice = normalise_trainable(spec.get("trainable", "all"), len(blocks))
    trunk = {name for name, _ in net.trunk.named_parameters(prefix="trunk")}
    if choice == "all":
        learning = trunk
    elif choice == "none":
        learning = set()
    else:
        learning = {name for block in blocks[len(blocks) - choice["last"]:] for name in block}
    net.freeze(trunk - learning)
    return net


def tiny_text_encoder_directory(directory: Path) -> Path:
    """A text-encoder model directory (`{"kind": "text-encoder", "path": …}`) holding a 2-layer BERT of width 32
    with random weights, all-MiniLM-L6-v2's tokenizer and its sentence-transformers pipeline (mean pooling,
    normalisation): what the service and sentence-transformers both load, at a thousandth of the cost."""
    from app.architectures.text import _hide_broken_torchvision, bundled_model_path

    _hide_broken_torchvision()
    from transformers import BertConfig, BertModel

    bundled = bundled_model_path()
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("modules.json", "sentence_bert_config.json", "special_tokens_map.json", "tokenizer.json",
                 "tokenizer_config.json", "vocab.txt"):
        shutil.copy(bundled / name, directory / name)
    pooling = json.loads((bundled / "1_Pooling" / "config.json").read_text()) | {"word_embedding_dimension": 32}
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=37, max_position_embeddings=512)
        BertModel(config, add_pooling_layer=False).save_pretrained(directory)
    return directory
