"""The built-in kinds against independent references: sentence-transformers' own embeddings for
all-MiniLM-L6-v2 and the efficientnet-lite-pytorch package's own classifier for EfficientNet-Lite0."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from app.architectures import (
    build_network,
    frozen_names,
    get_architecture,
    installed_architectures,
    load_network,
    theta_groups,
    validate_architecture,
)
from app.architectures.image import reference_network
from app.mas.networks import network_state

SENTENCES = ["A man is eating food.", "The quick brown fox jumps over the lazy dog, twice!", "hi", ""]


def _trunk_names(net) -> set[str]:
    return {name for name, _ in net.trunk.named_parameters(prefix="trunk")}


def _synthetic_png(width: int = 96, height: int = 80) -> bytes:
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_registry_lists_the_builtins_with_their_options():
    installed = installed_architectures()
    assert {"mlp", "cnn", "text-encoder", "image-backbone"} <= set(installed)
    for kind, architecture in installed.items():
        assert architecture.kind == kind and "trainable" in architecture.options()
    with pytest.raises(ValueError, match="mlp, text-encoder|image-backbone, mlp"):
        validate_architecture({"kind": "alexnet"})


@pytest.mark.parametrize("spec, message", [
    ({"kind": "text-encoder", "max_length": 4096}, "max_length"),
    ({"kind": "text-encoder", "path": "relative/dir"}, "absolute"),
    ({"kind": "text-encoder", "trainable": {"last": 8}}, "between 0 and 7"),
    ({"kind": "image-backbone", "image_size": 16}, "image_size"),
    ({"kind": "image-backbone", "colour": True}, "no option 'colour'"),
    ({"kind": "mlp", "input_shape": [4], "trainable": "some"}, "trainable"),
])
def test_invalid_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        validate_architecture(spec)


def test_text_encoder_features_equal_sentence_transformers(text_spec, text_net):
    from sentence_transformers import SentenceTransformer

    from app.architectures.text import bundled_model_path

    ids = get_architecture("text-encoder").preprocess(text_spec, SENTENCES)
    assert ids.dtype == torch.int64 and ids.shape == (len(SENTENCES), 32)
    with torch.no_grad():
        features = text_net.trunk(ids)
        one_by_one = torch.cat([text_net.trunk(ids[i : i + 1]) for i in range(len(SENTENCES))])
    reference = SentenceTransformer(str(bundled_model_path()), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    assert torch.allclose(features, reference.cpu(), atol=1e-5, rtol=0)
    assert torch.allclose(features, one_by_one, atol=1e-6, rtol=0)  # samples do not mix


def test_image_backbone_reproduces_the_reference_penultimate_features(image_spec, image_net):
    raw = [_synthetic_png(), np.full((40, 50, 3), 200, dtype=np.uint8), np.zeros((3, 70, 64), dtype=np.uint8)]
    x = get_architecture("image-backbone").preprocess(image_spec, raw)
    assert x.dtype == torch.float32 and x.shape == (3, 3, 64, 64)
    reference = reference_network(64, pretrained=True).eval()
    with torch.no_grad():
        logits = reference(x)
        ours = reference._fc(image_net.trunk(x))
    assert torch.allclose(ours, logits, atol=1e-5, rtol=0)
    assert torch.equal(ours.argmax(1), logits.argmax(1))


def test_image_preprocessing_refuses_corrupt_and_oversized_images(image_spec):
    architecture = get_architecture("image-backbone")
    png = _synthetic_png()
    with pytest.raises(ValueError, match="image 1: not a decodable image"):
        architecture.preprocess(image_spec, [png, b"not an image at all"])
    with pytest.raises(ValueError, match="image 0: not a decodable image"):
        architecture.preprocess(image_spec, [png[: len(png) // 2]])
    with pytest.raises(ValueError, match="over the limit"):
        architecture.preprocess(image_spec, [png], max_pixels=96 * 80 - 1)
    with pytest.raises(ValueError, match="uint8"):
        architecture.preprocess(image_spec, [np.zeros((8, 8, 3), dtype=np.float64)])


@pytest.mark.parametrize("kind", ["text", "image"])
def test_blocks_cover_the_trunk_and_trainable_freezes_the_rest(kind, request):
    spec, net = request.getfixturevalue(f"{kind}_spec"), request.getfixturevalue(f"{kind}_net")
    blocks = get_architecture(spec["kind"]).blocks(spec, net.trunk)
    flat = [name for block in blocks for name in block]
    assert len(flat) == len(set(flat)) and set(flat) == _trunk_names(net)
    assert spec["trainable"] == {"last": 2}
    assert net.frozen == _trunk_names(net) - set(blocks[-1]) - set(blocks[-2])
    assert frozen_names(spec, net, "none") == _trunk_names(net)
    assert frozen_names(spec, net, "all") == frozenset()
    assert frozen_names(spec, net, {"last": 0}) == _trunk_names(net)
    net.add_head("probe", 2, seed=1)
    try:
        learning = set(net.task_parameters("probe"))
        assert learning == set(blocks[-1]) | set(blocks[-2]) | {"heads.probe.weight", "heads.probe.bias"}
        groups = theta_groups(spec, net)
        keys = [key for group in groups.values() for key in group]
        assert sorted(keys) == sorted(net.state_dict()) and groups["rest"] == []
        assert groups["heads.probe"] == ["heads.probe.weight", "heads.probe.bias"]
    finally:
        del net.heads["probe"]


@pytest.mark.parametrize("kind", ["text", "image"])
def test_a_stored_network_reloads_bit_for_bit(kind, request):
    spec, net = request.getfixturevalue(f"{kind}_spec"), request.getfixturevalue(f"{kind}_net")
    architecture = get_architecture(spec["kind"])
    raw = SENTENCES if kind == "text" else [_synthetic_png()]
    x = architecture.preprocess(spec, raw)
    net.add_head("probe", 3, seed=2)
    try:
        loaded = load_network(spec, network_state(net)).eval()
        with torch.no_grad():
            assert torch.equal(loaded(x, "probe"), net(x, "probe"))
        assert loaded.frozen == net.frozen and loaded.architecture == spec
    finally:
        del net.heads["probe"]


def test_frozen_blocks_compute_the_same_function_in_training_mode(image_spec, image_net, text_spec, text_net):
    for spec, net, raw in ((image_spec, image_net, [_synthetic_png()] * 2), (text_spec, text_net, SENTENCES)):
        x = get_architecture(spec["kind"]).preprocess(spec, raw)
        frozen = build_network({**spec, "trainable": "none"}, seed=0)
        frozen.load_state_dict(net.state_dict())
        with torch.no_grad():
            assert torch.equal(frozen.train().trunk(x), frozen.eval().trunk(x))


def test_trainable_blocks_drop_paths_and_keep_batch_norm_statistics_per_task(image_spec, image_net):
    """In training mode the trainable MBConv blocks (the last 3: block 14 is residual) drop paths, as the
    package's model does. A task learned keeps its copy of the trained batch norms' statistics, stored
    with their block (so frozen blocks' groups stay as they were); frozen batch norms get none."""
    from app.architectures import theta_groups
    from app.mas.methods import make_method
    from app.mas.training import TrainConfig, train_task

    x = get_architecture("image-backbone").preprocess(image_spec, [_synthetic_png()] * 4)
    spec = {**image_spec, "trainable": {"last": 3}}
    net = build_network(spec, seed=0)
    net.load_state_dict(image_net.state_dict())
    with torch.no_grad():
        net.train()
        passes = []
        for seed in (0, 1):  # seeded: on 4 rows, two random draws of the masks agree one time in 4
            torch.manual_seed(seed)
            passes.append(net.trunk(x))
        assert not torch.equal(*passes)  # drop-connect in the trainable residual block
        assert torch.equal(net.eval().trunk(x), net.eval().trunk(x))
    train_task(net, "t", 2, x, torch.tensor([0, 1, 0, 1]), make_method("finetune"), TrainConfig(epochs=1, batch_size=4))
    copies = [key for key in network_state(net) if ".task_statistics.t." in key]
    assert copies and all(key.startswith(("trunk.blocks.14.", "trunk.blocks.15.", "trunk.head.")) for key in copies)
    groups = theta_groups(spec, net)
    assert not any(".task_statistics." in key for key in groups["rest"])
    assert set(copies) <= {key for name in ("block.15", "block.16", "block.17") for key in groups[name]}


@pytest.mark.parametrize("spec, raw", [
    ({"kind": "mlp", "input_shape": [3], "hidden": [5, 4]}, [[1, 2, 3], [4, 5, 6]]),
    ({"kind": "cnn", "input_shape": [1, 4, 4], "channels": [2], "hidden": [3]}, np.zeros((2, 16))),
])
def test_array_kinds_wrap_the_builtin_networks(spec, raw):
    spec = validate_architecture(spec)
    assert spec["trainable"] == "all"
    net = build_network(spec, seed=3)
    architecture = get_architecture(spec["kind"])
    blocks = architecture.blocks(spec, net.trunk)
    assert len(blocks) == len(spec["hidden"]) + len(spec.get("channels", []))
    assert sorted(n for b in blocks for n in b) == sorted(_trunk_names(net))
    x = architecture.preprocess(spec, raw)
    assert x.shape == (2, *spec["input_shape"])
    net.add_head("t", 2, seed=0)
    assert torch.equal(load_network(spec, network_state(net))(x, "t"), net(x, "t"))
    assert build_network({**spec, "trainable": {"last": 1}}, seed=3).frozen == set(
        n for b in blocks[:-1] for n in b
    )
    with pytest.raises(ValueError, match="numbers"):
        architecture.preprocess(spec, [[1, 2]])


@pytest.mark.parametrize("spec, raw", [
    ({"kind": "image-backbone", "image_size": 64, "trainable": "all"}, [_synthetic_png(), _synthetic_png(70, 90)]),
    ({"kind": "text-encoder", "max_length": 12, "trainable": "all"}, SENTENCES[:3]),
])
def test_exact_importance_on_the_trunk_matches_the_vmap_reference(spec, raw):
    """The factored per-sample Ω (forward hooks on Linear/Conv2d) sees the real layer inputs: the
    convolutions' TF-style padding is a module of its own, before the convolution."""
    from app.mas.importance import estimate_importance, estimate_importance_vmap

    spec = validate_architecture(spec)
    net = build_network(spec, seed=0)
    net.add_head("t", 3, seed=0)
    x = get_architecture(spec["kind"]).preprocess(spec, raw)
    exact, reference = estimate_importance(net, "t", x), estimate_importance_vmap(net, "t", x)
    # attention key biases have an exactly zero gradient (softmax ignores a per-query constant): their
    # sums are float noise, so the tolerance is absolute at the scale of the whole network's Ω
    scale = max(float(value.abs().max()) for value in reference.sums.values())
    for name, value in reference.sums.items():
        assert torch.allclose(exact.sums[name], value, rtol=1e-3, atol=1e-6 * scale), name
