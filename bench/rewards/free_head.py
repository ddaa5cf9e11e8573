"""Free-head reward model (GenARM-style): ARM + baseline whose token vectors are trained, not the frozen embeddings.

r(x, v) = (W h(x))^T u_v + w^T h(x), where u_v are the rows of a TRAINABLE token head U (V x d_e, its own
copy, initialised at the backbone's output embeddings E; the trunk's tied input embeddings stay frozen). One
trunk forward still scores every next token (U W h), so decoding, the KV cache and the input convention are
ARM's; only what the tokens are projected onto is learnt. With W = 0 at the start the untrained reward is 0,
exactly as ARM's. This is the other end of the design space from ARM: a token head as expressive as a
language-model head (rank <= min(d, d_e) + 1 per attribute, like ARM's bound, but with V x d_e free numbers
instead of the fixed geometry of E).

Relation to GenARM (Xu et al., "GenARM: Reward Guided Generation with Autoregressive Reward Model for
Test-time Alignment", 2024/25): GenARM's autoregressive reward model is a language model whose LM head (and
trunk) are trained, and whose next-token log-probabilities log pi_r(v | x) are the token rewards, added to the
base LM's logits at decoding time. Here the same structure -- a trainable head over the whole vocabulary from
one forward -- is trained the way every other parametrization of this suite is: the cumulative squared loss
on the labels (no preference pairs, no softmax normalisation: the baseline w^T h plays the role of the
prefix-dependent log-normaliser), on the same data, decoded with the same top-k rule. Differences in steering
against ARM + baseline therefore come from freeing the token head alone.
"""

from __future__ import annotations

from torch import nn

from bench.rewards.arm import ARMRewardModel
from bench.rewards.base import RewardConfig


class FreeHeadRewardModel(ARMRewardModel):
    """ARM + baseline with a trainable token head U (initialised at E); see the module docstring."""

    def __init__(self, config: RewardConfig) -> None:
        super().__init__(config)
        # Our own trainable copy: the backbone's (tied) embedding Parameter stays frozen and unchanged.
        self.token_embeddings = nn.Parameter(self.token_embeddings.detach().clone(), requires_grad=True)
