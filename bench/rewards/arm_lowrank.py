"""Rank-constrained ARM (+ baseline): the projection W factorised through a rank-r bottleneck (issue 30).

r(x, v) = (B A h(x))^T e_v + w^T h(x), with A: r x d and B: d_e x r per attribute (W = B A has rank <= r).
Over prefixes x tokens the token part is H A^T B^T E^T, so the reward matrix of one attribute has rank
<= min(d, d_e, r) + 1 (the baseline adds the rank-1 term b 1^T) by construction, whatever the training does.
That lets the rank sweep (config/rank_sweep.yaml, docs/rank_sweep.md) ask how much rank steering needs.

r is part of the name: the registry declares the family `arm-lowrank-r{r}` once (`LOWRANK_RANKS`,
`Parametrization.rank`), so every rank flows through train / generate / score / tables / rank like any
other parametrization and a folder's name says its rank. Everything else (trunk, loss, decoding rule, KV
cache, `score_candidates == forward(BOS + p + v)[-1]`) is ARM's.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.errors import ModelError
from bench.rewards.arm import ARMRewardModel
from bench.rewards.base import RewardConfig


class LowRankProjection(nn.Module):
    """h [..., d] -> (B_i A_i h)_i flattened [..., m * d_e]: ARM's `proj` with W_i = B_i A_i of rank <= r."""

    def __init__(self, d: int, m: int, r: int, d_e: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.m, self.r, self.d_e = m, r, d_e
        self.down = nn.Linear(d, m * r, bias=False).to(dtype=dtype)  # A_i stacked
        # Small random A, zero B: the untrained reward is exactly 0 (as ARM's zero W) and B gets gradients first.
        nn.init.normal_(self.down.weight, std=0.02)
        self.up = nn.Parameter(torch.zeros(m, d_e, r, dtype=dtype))  # B_i

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.down(h).unflatten(-1, (self.m, self.r))  # [..., m, r]
        return torch.einsum("...mr,mer->...me", z, self.up).flatten(-2)


class ARMLowRankRewardModel(ARMRewardModel):
    """ARM + baseline whose W is B A (rank r from the registry entry); see the module docstring."""

    def __init__(self, config: RewardConfig) -> None:
        super().__init__(config)  # baseline on: the family's entries have has_baseline=True
        from bench.rewards.registry import get

        r = get(self.config.parametrization).rank
        if r is None or int(r) < 1:
            raise ModelError(
                f"parametrization '{self.config.parametrization}': a low-rank ARM needs a rank >= 1 "
                f"in its registry entry, got {r!r}"
            )
        self.rank = int(r)
        self.proj = LowRankProjection(
            self.hidden_size, self.config.num_outputs, self.rank, self.embed_dim, self.token_embeddings.dtype
        )

    def token_rank_bound(self) -> int:
        """The bottleneck caps the token part: min(d, d_e, r)."""
        return min(self.hidden_size, self.embed_dim, self.rank)
