"""Packed passes of the text trunk (app/architectures/text.py, `pooled_states`): without gradients on a CPU,
the real tokens of several texts go through as one sequence with block-diagonal attention. The independent
computation is each text alone, cut to its own tokens (no padding, nothing to pack), on a tiny random BERT
in eager and fused attention; and the rule that decides when a pass packs is checked case by case.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from app.architectures import text
from app.architectures.text import PACKED_TOKENS, encode_layers, packs, pool, pooled_states
from tests.unit.test_frozen_prefix import text_net, token_ids


def one_text_at_a_time(trunk: torch.nn.Module, ids: Tensor) -> Tensor:
    """Each text's features from its own tokens only: the per-text loop a packed pass must equal."""
    rows = []
    for row in ids:
        own = row[row != trunk.pad_id].unsqueeze(0)
        mask = torch.ones_like(own, dtype=torch.bool)
        hidden = trunk.embeddings(input_ids=own, token_type_ids=torch.zeros_like(own))
        rows.append(pool(encode_layers(trunk.layers, hidden, mask), mask, trunk.normalize))
    return torch.cat(rows)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_packed_features_equal_each_text_alone(attention: str, monkeypatch: pytest.MonkeyPatch) -> None:
    net = text_net()
    net.trunk.set_attention(attention)
    ids = token_ids(40, 3)  # lengths 2 to 14 in passes of 16, shortest together: some packed, some not
    decided: list[bool] = []
    monkeypatch.setattr(text, "packs", lambda *args: decided.append(packs(*args)) or decided[-1])
    with torch.no_grad():
        torch.testing.assert_close(net.trunk(ids), one_text_at_a_time(net.trunk, ids), rtol=1e-5, atol=1e-6)
    assert True in decided and False in decided


def test_pooled_states_packs_only_without_gradients_and_agrees_with_the_padded_pass() -> None:
    trunk = text_net().trunk
    ids = token_ids(9, 4)
    with torch.no_grad():
        assert packs(ids.unsqueeze(-1), (ids != trunk.pad_id).sum(1))  # these lengths do pack
    mask = ids != trunk.pad_id
    hidden = trunk.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
    padded = pool(encode_layers(trunk.layers, hidden, mask), mask, trunk.normalize)
    assert padded.requires_grad  # with gradients: the padded pass, as training and Ω need it
    torch.testing.assert_close(pooled_states(trunk.layers, hidden, mask, trunk.normalize), padded)
    with torch.no_grad():
        torch.testing.assert_close(pooled_states(trunk.layers, hidden, mask, trunk.normalize), padded.detach(),
                                   rtol=1e-5, atol=1e-6)


def test_a_text_answers_the_same_whichever_texts_share_its_pass() -> None:
    net = text_net()
    ids = token_ids(24, 5)
    with torch.no_grad():
        alone = torch.cat([net.trunk(ids[i : i + 1]) for i in range(len(ids))])
        together = net.trunk(ids)
        reversed_order = net.trunk(ids.flip(0)).flip(0)
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(reversed_order, together, rtol=1e-5, atol=1e-6)


def test_a_pass_packs_only_where_padding_is_costly_and_its_tokens_are_few() -> None:
    hidden = torch.zeros(4, 10, 8)
    with torch.no_grad():
        assert packs(hidden, torch.tensor([10, 2, 2, 2]))  # 40 padded positions for 16 real tokens
        assert not packs(hidden, torch.tensor([10, 9, 8, 9]))  # 40 for 36: padding costs little
        assert not packs(hidden[:1], torch.tensor([3]))  # one row: nothing to pack
        assert not packs(torch.zeros(2, PACKED_TOKENS, 8), torch.tensor([PACKED_TOKENS, 1]))  # too many tokens
    assert not packs(hidden, torch.tensor([10, 2, 2, 2]))  # with gradients (training, Ω): padded
