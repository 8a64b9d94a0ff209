"""Frozen layers computed once per job (app/mas/frozen_prefix.py) against the uncached run.

A tiny random BERT in the text-encoder trunk and EfficientNet-Lite0 (random weights, 32 px) with their
last 2 blocks trainable learn a second task through `learn_task` twice from the same start: once with
the trunk's split and a prefix cache, once without. The λ search, the validation of both tasks, the
per-task batch-norm statistics, drop-connect and the exact per-sample Ω all run on the cached features
in the first; losses, θ (every key of the state), the trials and Ω must be the uncached run's within
fp32 rounding, and the frozen prefix must really have run only once per row set.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from app.architectures.image import EfficientNetLiteTrunk
from app.architectures.registry import frozen_names, trunk_split
from app.architectures.text import TextEncoderTrunk
from app.mas.frozen_prefix import cache_prefix
from app.mas.importance import estimate_importance
from app.mas.learn import LearnedTask, MethodChoice, learn_task
from app.mas.networks import InputSpec, MultiHeadNet, network_state
from app.mas.task_statistics import Statistics
from app.mas.training import TrainConfig
from app.mas.validation import ValidationSet

TEXT_SPEC = {"kind": "text-encoder", "trainable": {"last": 2}}
IMAGE_SPEC = {"kind": "image-backbone", "image_size": 32, "trainable": {"last": 3}}  # block 14 drops connections


def text_net() -> MultiHeadNet:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=40, max_position_embeddings=32, hidden_dropout_prob=0.1,
                        attention_probs_dropout_prob=0.1)
    config._attn_implementation = "eager"
    bert = BertModel(config, add_pooling_layer=False)
    net = MultiHeadNet(TextEncoderTrunk(bert, pad_id=0, normalize=True), 32, InputSpec((16,), torch.int64))
    return _prepared(net, TEXT_SPEC)


def token_ids(n: int, seed: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 60, (n, 16), generator=generator)
    for row, length in enumerate(torch.randint(2, 15, (n,), generator=generator).tolist()):
        ids[row, length:] = 0
    return ids


def image_net() -> MultiHeadNet:
    """EfficientNet-Lite0's 16 blocks (block 14 a residual one that drops connections) at a quarter of its
    width: the same trunk code as the kind builds, about 15 times fewer multiply-adds than the full width."""
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)
    network = EfficientNet.from_name("efficientnet-lite0", image_size=IMAGE_SPEC["image_size"], width_coefficient=0.25)
    trunk = EfficientNetLiteTrunk(network)
    assert len(trunk.blocks) == 16 and trunk.blocks[14].residual and trunk.blocks[14].drop_rate > 0
    spec = InputSpec((3, IMAGE_SPEC["image_size"], IMAGE_SPEC["image_size"]), torch.float32)
    return _prepared(MultiHeadNet(trunk, trunk.head.conv.out_channels, spec), IMAGE_SPEC)


def images(n: int, seed: int) -> Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _prepared(net: MultiHeadNet, spec: dict) -> MultiHeadNet:
    """`spec`'s frozen blocks, and an earlier task `old` with a head and some Ω to protect."""
    net.architecture = spec
    net.freeze(frozen_names(spec, net))
    net.add_head("old", 3, seed=1)
    return net.eval()


def _learn(net: MultiHeadNet, inputs: Tensor, old_inputs: Tensor, cached: bool) -> LearnedTask:
    generator = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 2, (inputs.shape[0],), generator=generator)
    old_labels = torch.randint(0, 3, (old_inputs.shape[0],), generator=generator)
    trainable = net.task_parameters("old")
    omega = {name: torch.rand(p.shape, generator=generator) for name, p in trainable.items()}
    validation = [ValidationSet("old", old_inputs, old_labels), ValidationSet("new", inputs[:6], labels[:6])]
    return learn_task(
        net, "new", 2, inputs[6:], labels[6:], method=MethodChoice("mas"), theta_star=network_state(net),
        omega=omega, config=TrainConfig(epochs=2, batch_size=8, lr=0.05, seed=3), lambda_grid=[0.1, 10.0],
        validation=validation, prefix=trunk_split(net.architecture, net) if cached else None,
        prefix_budget=1 << 30,
    )


def _prefix_calls(net: MultiHeadNet, module: nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def _assert_same_run(cached: LearnedTask, plain: LearnedTask) -> None:
    assert cached.lam == plain.lam
    for trial, expected_trial in zip(cached.trials, plain.trials, strict=True):
        assert trial.lam == expected_trial.lam and trial.scores == expected_trial.scores
        assert trial.losses == pytest.approx(expected_trial.losses, rel=1e-5)
    torch.testing.assert_close(torch.tensor(cached.training.loss_per_epoch),
                               torch.tensor(plain.training.loss_per_epoch), rtol=1e-5, atol=1e-6)
    theta, expected = network_state(cached.net), network_state(plain.net)
    assert theta.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(theta[name], value, rtol=1e-4, atol=1e-5, msg=name)
    assert cached.estimate is not None and plain.estimate is not None
    assert cached.estimate.n == plain.estimate.n
    assert cached.estimate.sums.keys() == plain.estimate.sums.keys()
    for name, value in plain.estimate.sums.items():
        torch.testing.assert_close(cached.estimate.sums[name], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("kind", ["text", "image"])
def test_cached_prefix_is_the_uncached_run(kind: str) -> None:
    make, rows, prefix_of = ((text_net, token_ids, lambda net: net.trunk.embeddings) if kind == "text"
                             else (image_net, images, lambda net: net.trunk.stem))
    start, inputs, old_inputs = make(), rows(30, 1), rows(10, 2)
    plain_net, cached_net = copy.deepcopy(start), copy.deepcopy(start)
    plain_calls, cached_calls = _prefix_calls(plain_net, prefix_of(plain_net)), _prefix_calls(cached_net,
                                                                                               prefix_of(cached_net))
    plain = _learn(plain_net, inputs, old_inputs, cached=False)
    cached = _learn(cached_net, inputs, old_inputs, cached=True)
    _assert_same_run(cached, plain)
    # a probe row for the cache's size, one for the passes' size (app/mas/passes.py, once per network and
    # input shape), then the training, old and new validation rows once each
    assert cached_calls[0] == 5
    assert plain_calls[0] >= 3 * cached_calls[0]  # every step of both trials, the validations and Ω
    if kind == "image":  # the trained batch norms kept each task's statistics, as uncached
        assert any(key.endswith("task_statistics.new.mean") for key in network_state(cached.net))


def test_exact_importance_on_cached_features_equals_the_whole_network() -> None:
    net = text_net()
    ids = token_ids(12, 4)
    split = trunk_split(net.architecture, net)
    cache = cache_prefix(net, split, [ids], 1 << 30)
    assert cache is not None
    view = cache.view(net)
    assert set(view.task_parameters("old")) == set(net.task_parameters("old"))
    whole = estimate_importance(net, "old", ids)
    suffix = estimate_importance(view, "old", cache.features(net, ids))
    for name, value in whole.sums.items():
        torch.testing.assert_close(suffix.sums[name], value, rtol=1e-5, atol=1e-7, msg=name)
    torch.testing.assert_close(view(cache.features(net, ids), "old"), net(ids, "old"), rtol=1e-5, atol=1e-6)


def test_no_cache_beyond_the_budget_or_when_the_prefix_differs_per_task() -> None:
    net = image_net()
    x = images(4, 0)
    split = trunk_split(net.architecture, net)
    assert cache_prefix(net, split, [x], 1 << 30) is not None
    assert cache_prefix(net, split, [x], 100) is None
    assert cache_prefix(net, split, [x], 0) is None
    assert cache_prefix(net, None, [x], 1 << 30) is None
    stem_norm = net.trunk.stem.bn  # a frozen batch norm that an earlier task trained with its own statistics
    stem_norm.task_statistics["old"] = Statistics(stem_norm.running_mean, stem_norm.running_var)
    assert cache_prefix(net, split, [x], 1 << 30) is None


def test_split_points_follow_trainable() -> None:
    net = image_net()
    for trainable, suffix_blocks, head in [({"last": 1}, 0, True), ({"last": 3}, 2, True), ("none", 0, False)]:
        spec = {**IMAGE_SPEC, "trainable": trainable}
        net.freeze(frozen_names(spec, net))
        suffix = trunk_split(spec, net).suffix(net.trunk)
        assert len(suffix.blocks) == suffix_blocks and (suffix.head is not None) == head
    net.freeze(frozen_names({**IMAGE_SPEC, "trainable": "all"}, net))
    assert trunk_split(IMAGE_SPEC, net) is None
