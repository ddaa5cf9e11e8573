"""Training losses over reward models' per-prefix outputs [B, L, m].

The cumulative loss regresses EVERY prefix of a text on the text's label, weighting position t of a
length-L text (t = 1..L over its real tokens after BOS) by 2t / (L (L + 1)): the weights sum to 1 per
text, and longer prefixes (which know more of the text) count more. Position 0 (BOS) and padding get
weight 0; L is each text's own length, so padding never changes a text's loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from bench.errors import ConfigError


def prefix_weights(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, L] weights 2t/(L(L+1)) at real token t = 1..L (BOS at t = 0 and padding get 0)."""
    mask = attention_mask.to(torch.float32)
    t = (mask.cumsum(-1) - 1.0) * mask  # BOS -> 0, first text token -> 1, padding -> 0
    n = (mask.sum(-1, keepdim=True) - 1.0).clamp(min=0.0)  # L per text (without BOS)
    denom = (n * (n + 1.0)).clamp(min=1.0)
    return 2.0 * t / denom


def _has_tokens(attention_mask: torch.Tensor) -> torch.Tensor:
    return attention_mask.sum(-1) > 1  # at least one token after BOS


def _mean_over_texts(per_text: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """per_text [B, m] -> scalar: mean over texts with >= 1 token, and over the m attributes."""
    keep = _has_tokens(attention_mask).to(per_text.dtype)
    return (per_text.mean(-1) * keep).sum() / keep.sum().clamp(min=1.0)


def cumulative_mse(rewards: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """sum_t w_t (r_t - y)^2 per text and attribute, averaged over texts and attributes."""
    w = prefix_weights(attention_mask).unsqueeze(-1)  # [B, L, 1]
    err = (rewards.float() - labels.float().unsqueeze(1)) ** 2  # [B, L, m]
    return _mean_over_texts((w * err).sum(1), attention_mask)


def cumulative_bce(rewards: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Same weights, binary cross-entropy of sigmoid(r_t) against the label (labels in [0, 1])."""
    w = prefix_weights(attention_mask).unsqueeze(-1)
    target = labels.float().unsqueeze(1).expand_as(rewards)
    err = F.binary_cross_entropy_with_logits(rewards.float(), target, reduction="none")
    return _mean_over_texts((w * err).sum(1), attention_mask)


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last real token (right or left padding)."""
    pos = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (pos * attention_mask.long()).argmax(-1)


def last_token_rewards(rewards: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, m] reward of each whole text (the prefix ending at its last real token)."""
    idx = last_token_index(attention_mask)
    return rewards[torch.arange(rewards.shape[0], device=rewards.device), idx]


def last_token_mse(rewards: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(r_L - y)^2 of the whole text only, averaged over texts and attributes."""
    err = (last_token_rewards(rewards, attention_mask).float() - labels.float()) ** 2
    return _mean_over_texts(err, attention_mask)


def distill_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared difference over the entries where mask (broadcast to student's shape) is true."""
    err = (student.float() - teacher.float()) ** 2
    if mask is None:
        return err.mean()
    m = mask.to(err.dtype)
    while m.dim() < err.dim():
        m = m.unsqueeze(-1)
    m = m.expand_as(err)
    return (err * m).sum() / m.sum().clamp(min=1.0)


LabelLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES: dict[str, LabelLoss] = {
    "cumulative_mse": cumulative_mse,
    "cumulative_bce": cumulative_bce,
    "last_mse": last_token_mse,
}


def get_loss(name: str) -> LabelLoss:
    if name not in LOSSES:
        raise ConfigError(f"unknown loss '{name}'; expected one of {sorted(LOSSES)}")
    return LOSSES[name]
