"""ARM / low-rank RAD: the reward of EVERY next token from one trunk forward (Troshin et al.).

r(x, v) = (W h(x))^T e_v  (+ w^T h(x) with the prefix baseline), where h(x) is the trunk's last hidden
state of the prefix, W maps it to m vectors in the output-embedding space, and e_v are the backbone's
frozen output embeddings. So one forward scores the whole vocabulary; decoding costs one call per token
however many candidates are scored, and the KV cache only ever reads the sampled tokens (after the model's own
BOS, which `with_bos` puts in front of the base LM's ids, as the training collator does).

Registered as "arm" (no baseline), "arm-baseline" and "arm-distill" (baseline on; distill is trained
from a RAD teacher by `bench.training.distill`): see bench/rewards/registry.py.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from bench.errors import ModelError
from bench.rewards.base import PrefixCache, RewardConfig, RewardModel, cache_kwarg, output_cache, position_ids_from_mask

log = logging.getLogger(__name__)


class ARMState(PrefixCache):
    """ARM's decoding state: the KV cache of BOS + the prefix, and the prefix's last hidden state."""

    def reset(self) -> None:
        super().reset()
        self.last_hidden: tuple[int, torch.Tensor] | None = None  # (cache length it belongs to, h [B, d])


class ARMRewardModel(RewardModel):
    """Trunk + W (+ w) over frozen output embeddings; see the module docstring for the math."""

    def __init__(self, config: RewardConfig) -> None:
        super().__init__(config)
        config = self.config
        from bench.models.loading import load_causal_lm

        lm = load_causal_lm(config.backbone, dtype=config.dtype, device="cpu", num_layers=config.num_layers)
        self.backbone = lm.base_model  # transformer blocks + final norm, no LM head
        self.backbone.get_input_embeddings().weight.requires_grad_(False)
        out_emb = lm.get_output_embeddings()
        if out_emb is None:
            raise ModelError(f"backbone '{config.backbone}': no output embeddings (LM head) to score tokens with")
        # The same Parameter as the input embeddings when tied (no copy); frozen either way.
        self.token_embeddings = out_emb.weight
        self.token_embeddings.requires_grad_(False)
        self._cache_kw = cache_kwarg(self.backbone)
        d = int(self.backbone.config.hidden_size)
        d_e = int(self.token_embeddings.shape[1])
        m = config.num_outputs
        dtype = self.token_embeddings.dtype
        self.embed_dim = d_e
        # Zero init: an untrained model gives reward 0 everywhere; gradients still reach W (they scale with e_v).
        self.proj = nn.Linear(d, m * d_e, bias=False).to(dtype=dtype)
        nn.init.zeros_(self.proj.weight)
        self.baseline = None
        if config.baseline:
            self.baseline = nn.Linear(d, m).to(dtype=dtype)
            nn.init.zeros_(self.baseline.weight)
            nn.init.zeros_(self.baseline.bias)

    # ---- bookkeeping ----------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return int(self.token_embeddings.shape[0])

    def calls_per_token(self, k: int) -> int:
        return 1

    def new_state(self) -> ARMState:
        return ARMState()

    def token_rank_bound(self) -> int:
        """Rank of the token part (W h)^T e_v over prefixes x tokens: at most min(d, d_e)."""
        return min(self.hidden_size, self.embed_dim)

    def rank_bound(self) -> int:
        """Token part's bound, + 1 for the prefix baseline (a rank-1 term b 1^T)."""
        return self.token_rank_bound() + (1 if self.baseline is not None else 0)

    def step_cost(self, k: int) -> dict[str, int]:
        """Per generated token the trunk reads the sampled token once; W (+ w) apply once, and the k candidates'
        embedding rows are dotted with W h (k * m * d_e)."""
        extra = sum(p.numel() for p in self.proj.parameters())
        if self.baseline is not None:
            extra += sum(p.numel() for p in self.baseline.parameters())
        extra += self.extra_step_params(int(k))
        return {"trunk_params": self._trunk_param_count(), "extra_params": extra, "positions": 1}

    def extra_step_params(self, k: int) -> int:
        """Weights beyond W and w that score k candidates from W h."""
        return k * self.config.num_outputs * self.embed_dim

    def _head_module(self) -> nn.Module:
        return self.proj

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Like the base class, but a tied embedding registered under two names is frozen under both."""
        frozen = {n for n, p in self.named_parameters(remove_duplicate=False) if not p.requires_grad}
        return {k: v.detach().contiguous() for k, v in self.state_dict().items() if k not in frozen}

    # ---- the math -----------------------------------------------------------------------------
    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Trunk hidden states [B, L, d] (positions from the mask, so left padding does not shift them)."""
        out = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
        )
        return out.last_hidden_state

    def token_vectors(self, h: torch.Tensor) -> torch.Tensor:
        """W h: [..., d] -> [..., m, d_e]."""
        return self.proj(h).unflatten(-1, (self.config.num_outputs, self.embed_dim))

    def baseline_scores(self, h: torch.Tensor) -> torch.Tensor:
        """w^T h: [..., m] (zeros without a baseline)."""
        if self.baseline is None:
            return h.new_zeros(*h.shape[:-1], self.config.num_outputs)
        return self.baseline(h)

    def token_scores(self, h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Token part (W h)^T e_v for given tokens: h [..., d], tokens [..., k] -> [..., k, m]."""
        u = self.token_vectors(h)  # [..., m, d_e]
        e = self.token_embeddings[tokens]  # [..., k, d_e]
        return torch.einsum("...md,...kd->...km", u, e)

    def vocab_token_scores(self, h: torch.Tensor) -> torch.Tensor:
        """Token part for all V tokens: h [N, d] -> [N, V, m]."""
        u = self.token_vectors(h)  # [N, m, d_e]
        return torch.einsum("nmd,vd->nvm", u, self.token_embeddings)

    def candidate_rewards(self, h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """r(x, v) for prefixes with hidden state h [..., d] and tokens [..., k] -> [..., k, m]."""
        return self.token_scores(h, tokens) + self.baseline_scores(h).unsqueeze(-2)

    def vocab_rewards(self, h: torch.Tensor) -> torch.Tensor:
        """r(x, v) for all v: h [N, d] -> [N, V, m]."""
        return self.vocab_token_scores(h) + self.baseline_scores(h).unsqueeze(-2)

    # ---- training -----------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """out[:, t] = r(x_{<t}, x_t) from h_{t-1}; 0 at t = 0, at padding, and where x_{t-1} is padding."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        h = self.hidden_states(input_ids, attention_mask)
        r = self.candidate_rewards(h[:, :-1], input_ids[:, 1:, None]).squeeze(-2)  # [B, L-1, m]
        valid = (attention_mask[:, 1:] * attention_mask[:, :-1]).unsqueeze(-1).to(r.dtype)
        zero = r.new_zeros(r.shape[0], 1, r.shape[-1])
        return torch.cat([zero, r * valid], dim=1)

    # ---- decoding -----------------------------------------------------------------------------
    def prefix_hidden(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, state: ARMState | None
    ) -> torch.Tensor:
        """h of the whole prefix [B, d] (ids as read: BOS first); with a state, only new tokens are read."""
        if state is None:
            return self.hidden_states(input_ids, attention_mask)[:, -1]
        new_ids, _ = state.plan(input_ids, attention_mask)
        p = state.length
        cached = state.last_hidden
        if new_ids.shape[1] == 0 and cached is not None and cached[0] == p:
            return cached[1]
        if new_ids.shape[1] == 0:  # nothing new but no stored hidden state: start over
            state.reset()
            new_ids, p = input_ids, 0
        full_mask = attention_mask.long()
        out = self.backbone(
            input_ids=new_ids,
            attention_mask=full_mask,
            position_ids=position_ids_from_mask(full_mask)[:, p:],
            use_cache=True,
            **{self._cache_kw: state.past_key_values},
        )
        h = out.last_hidden_state[:, -1]
        state.commit(input_ids, attention_mask, output_cache(out))
        state.last_hidden = (state.length, h)
        return h

    @torch.no_grad()
    def score_candidates(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        candidates: torch.Tensor,
        state: PrefixCache | None = None,
    ) -> torch.Tensor:
        h = self.prefix_hidden(*self.with_bos(input_ids, attention_mask), state)
        return self.candidate_rewards(h, candidates.long())

    @torch.no_grad()
    def score_vocab(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        state: PrefixCache | None = None,
        chunk_size: int = 1024,
    ) -> torch.Tensor:
        h = self.prefix_hidden(*self.with_bos(input_ids, attention_mask), state)
        return self.vocab_rewards(h)
