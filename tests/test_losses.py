"""Training losses against hand-computed values (padding-aware prefix weights 2t/(L(L+1)))."""

from __future__ import annotations

import math

import pytest
import torch

from bench.errors import ConfigError
from bench.training.losses import cumulative_bce, cumulative_mse, distill_mse, get_loss, last_token_mse, prefix_weights

# Text A: BOS + 3 tokens (L=3), label 1. Text B: BOS + 1 token (L=1), label 0, right-padded to 4
# with garbage rewards in the padding that must not count.
MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
REWARDS = torch.tensor([[0.0, 0.5, 1.0, 0.0], [0.0, 0.2, 9.0, 9.0]]).unsqueeze(-1)  # [B, L, m=1]
LABELS = torch.tensor([[1.0], [0.0]])


def test_prefix_weights_by_hand():
    # A: t = 1, 2, 3 -> 2t/(3*4) = 1/6, 2/6, 3/6 ; B: t = 1 -> 2/(1*2) = 1 ; BOS and padding 0.
    expected = torch.tensor([[0, 1 / 6, 2 / 6, 3 / 6], [0, 1, 0, 0]])
    assert torch.allclose(prefix_weights(MASK), expected)
    assert torch.allclose(prefix_weights(MASK).sum(-1), torch.ones(2))


def test_cumulative_mse_by_hand():
    # A: 1/6*(0.5-1)^2 + 2/6*(1-1)^2 + 3/6*(0-1)^2 = 0.25/6 + 0.5 = 13/24
    # B: 1*(0.2-0)^2 = 0.04            mean over the two texts: (13/24 + 0.04) / 2
    expected = (13 / 24 + 0.04) / 2
    assert cumulative_mse(REWARDS, LABELS, MASK).item() == pytest.approx(expected, rel=1e-6)


def test_cumulative_mse_averages_attributes():
    # second attribute: label 0 everywhere, rewards 1 on every real token -> per-text loss 1 for both texts
    r2 = torch.cat([REWARDS, torch.ones_like(REWARDS)], dim=-1)
    y2 = torch.cat([LABELS, torch.zeros_like(LABELS)], dim=-1)
    expected = ((13 / 24 + 1.0) / 2 + (0.04 + 1.0) / 2) / 2
    assert cumulative_mse(r2, y2, MASK).item() == pytest.approx(expected, rel=1e-6)


def test_padding_does_not_change_a_texts_loss():
    alone = cumulative_mse(REWARDS[1:, :2], LABELS[1:], MASK[1:, :2])
    assert alone.item() == pytest.approx(0.04, rel=1e-6)


def test_cumulative_bce_by_hand():
    # BCE(sigmoid(r), y) per position: A: -log s(0.5), -log s(1), -log s(0); B: -log(1 - s(0.2))
    def s(x):
        return 1 / (1 + math.exp(-x))

    a = (1 / 6) * -math.log(s(0.5)) + (2 / 6) * -math.log(s(1.0)) + (3 / 6) * -math.log(s(0.0))
    b = -math.log(1 - s(0.2))
    assert cumulative_bce(REWARDS, LABELS, MASK).item() == pytest.approx((a + b) / 2, rel=1e-6)


def test_last_token_mse_by_hand():
    # A's last real reward 0.0 vs 1 -> 1 ; B's 0.2 vs 0 -> 0.04
    assert last_token_mse(REWARDS, LABELS, MASK).item() == pytest.approx((1 + 0.04) / 2, rel=1e-6)


def test_distill_mse_masks_entries():
    s = torch.tensor([[1.0, 2.0, 5.0]])
    t = torch.tensor([[0.0, 0.0, 0.0]])
    assert distill_mse(s, t, torch.tensor([[1, 1, 0]])).item() == pytest.approx((1 + 4) / 2)
    assert distill_mse(s, t).item() == pytest.approx((1 + 4 + 25) / 3)


def test_unknown_loss_is_a_config_error():
    with pytest.raises(ConfigError, match="cumulative_mse"):
        get_loss("hinge")
