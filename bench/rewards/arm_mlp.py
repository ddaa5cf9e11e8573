"""ARM-MLP: ARM token scores mixed across the vocabulary through a rank-r bottleneck.

Per attribute i: s_i = (W_i h)^T E (one score per vocabulary entry), then s_i -> (s_i A_i) B_i with
A_i: |V| x r and B_i: r x |V|, plus the prefix baseline w_i^T h. The map is linear, so
s_i A_i = (W_i h)^T (E^T A_i): we fold E^T A_i (d_e x r) once per call and never build a [tokens, V]
score matrix in training; only the gathered columns B_i[:, x_t] are touched. Only scoring the whole
vocabulary (`score_vocab`) materialises [B, V, m].
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.errors import ModelError
from bench.rewards.arm import ARMRewardModel
from bench.rewards.base import RewardConfig


class ARMMLPRewardModel(ARMRewardModel):
    def __init__(self, config: RewardConfig) -> None:
        super().__init__(config)  # baseline on: the registry's arm-mlp entry has has_baseline=True
        config = self.config  # our copy: the default rank is recorded in the saved folder, not the caller's config
        d = int(self.backbone.config.hidden_size)
        if config.mlp_rank is None:
            config.mlp_rank = d
        r = int(config.mlp_rank)
        if r < 1:
            raise ModelError(f"reward config: mlp_rank must be >= 1, got {r}")
        m, v = config.num_outputs, self.vocab_size
        dtype = self.token_embeddings.dtype
        # Small random W and A, zero B: the untrained reward is exactly 0, and B gets gradients first.
        nn.init.normal_(self.proj.weight, std=0.02)
        self.mix_in = nn.Parameter(torch.randn(m, v, r, dtype=dtype) / math.sqrt(v))  # A_i: V x r
        self.mix_out = nn.Parameter(torch.zeros(m, r, v, dtype=dtype))  # B_i: r x V

    def token_rank_bound(self) -> int:
        """The bottleneck caps the token part: min(d, d_e, r)."""
        return min(self.hidden_size, self.embed_dim, int(self.config.mlp_rank))

    def extra_step_params(self, k: int) -> int:
        """Per step: the folded E^T A (m * d_e * r) and k gathered columns of B (k * m * r)."""
        m, r = self.config.num_outputs, int(self.config.mlp_rank)
        return m * self.embed_dim * r + k * m * r

    def folded_mix_in(self) -> torch.Tensor:
        """E^T A_i for every attribute: [m, d_e, r] (V*d_e*r flops: reused across decoding steps)."""
        if torch.is_grad_enabled() and self.mix_in.requires_grad:
            return torch.einsum("vd,mvr->mdr", self.token_embeddings, self.mix_in)
        # Without gradients (decoding, eval) reuse the fold until A or E change (in-place updates bump _version).
        key = (
            self.mix_in._version,
            self.token_embeddings._version,
            self.mix_in.data_ptr(),
            self.token_embeddings.data_ptr(),
            self.mix_in.dtype,
        )
        cached = getattr(self, "_folded", None)
        if cached is None or cached[0] != key:
            with torch.no_grad():
                folded = torch.einsum("vd,mvr->mdr", self.token_embeddings, self.mix_in)
            self._folded = (key, folded)
        return self._folded[1]

    def bottleneck(self, h: torch.Tensor) -> torch.Tensor:
        """z_i = s_i A_i = (W_i h)^T E^T A_i: [..., d] -> [..., m, r]."""
        return torch.einsum("...md,mdr->...mr", self.token_vectors(h), self.folded_mix_in())

    def token_scores(self, h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(s A) B at the given tokens: h [..., d], tokens [..., k] -> [..., k, m]."""
        z = self.bottleneck(h)  # [..., m, r]
        cols = self.mix_out.permute(2, 0, 1)[tokens]  # [..., k, m, r]
        return torch.einsum("...mr,...kmr->...km", z, cols)

    def vocab_token_scores(self, h: torch.Tensor) -> torch.Tensor:
        """(s A) B for all tokens: h [N, d] -> [N, V, m]."""
        return torch.einsum("nmr,mrv->nvm", self.bottleneck(h), self.mix_out)
