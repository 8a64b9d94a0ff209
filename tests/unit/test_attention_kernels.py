"""The text trunk's fused attention (transformers' "sdpa") against eager attention, the independent
computation: features (predictions' passes without gradients and training's whole batch), the gradient
of a training loss, and the exact per-sample Ω must agree within fp32 rounding on a tiny random BERT
with padded texts of different lengths.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as functional

from app.architectures.text import TextEncoder
from app.mas.importance import estimate_importance
from tests.unit.test_frozen_prefix import text_net, token_ids


def _pair() -> tuple:
    eager = text_net()
    eager.trunk.set_attention("eager")
    fused = copy.deepcopy(eager)
    fused.trunk.set_attention("sdpa")
    assert (eager.trunk.attention, fused.trunk.attention) == ("eager", "sdpa")
    return eager, fused


def test_the_built_text_trunk_uses_fused_attention() -> None:
    spec = {"kind": "text-encoder", "path": None, "max_length": 16, "normalize": True, "trainable": {"last": 2}}
    trunk, _, _ = TextEncoder().build_trunk(spec, pretrained=False, seed=0)
    assert trunk.attention == "sdpa"


def test_features_equal_eager_attention() -> None:
    eager, fused = _pair()
    ids = token_ids(40, 7)  # more than one 16-row pass, lengths 2 to 14 of 16 columns
    with torch.no_grad():
        torch.testing.assert_close(fused.trunk(ids), eager.trunk(ids), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused.trunk(ids[:12]), eager.trunk(ids[:12]), rtol=1e-5, atol=1e-6)


def test_training_gradients_equal_eager_attention() -> None:
    eager, fused = _pair()
    ids, labels = token_ids(12, 8), torch.arange(12) % 3
    for net in (eager, fused):  # train mode, dropout off in the trained layers: only the kernel differs
        net.train()
        for module in net.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
            if hasattr(module, "dropout_prob"):
                module.dropout_prob = 0.0
        functional.cross_entropy(net(ids, "old"), labels).backward()
    for (name, p), (_, q) in zip(eager.named_parameters(), fused.named_parameters(), strict=True):
        if p.grad is not None and not name.endswith("key.bias"):  # ∂/∂ key bias is 0: softmax's shift invariance
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_exact_importance_equals_eager_attention() -> None:
    eager, fused = _pair()
    ids = token_ids(10, 9)
    expected, measured = estimate_importance(eager, "old", ids), estimate_importance(fused, "old", ids)
    assert not measured.fallback
    scale = max(float(v.max()) for v in expected.sums.values())
    for name, value in expected.sums.items():  # key biases' true Ω is 0: both are rounding noise there
        torch.testing.assert_close(measured.sums[name], value, rtol=1e-4, atol=1e-6 * scale, msg=name)
