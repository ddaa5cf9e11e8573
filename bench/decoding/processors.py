"""Logits processors for reward-guided decoding with `model.generate`.

* `TopKRewardLogitsProcessor`: keep the base LM's top-k next tokens, add `beta * r` (toward) or
  `beta * (1 - r)` (away) with r the clamped reward of prefix+candidate; everything else is -inf.
  The reward model gets the base LM's ids unchanged and reads its own BOS in front of them (its state owns
  that), so it sees BOS + prompt + continuation, exactly what its loss trained.
  With no reward model (or beta = 0) it is exactly plain top-k.
  `reward_rule` says how raw rewards (unbounded regressions) become r: `clamp` (the papers' rule, the
  default), `centered` (minus the mean over the step's k candidates, plus 0.5, then clamped: a step where
  every candidate is rated above 1 keeps its differences instead of clamping them away) or `sigmoid`
  (sigmoid(4 (r - 0.5)): slope 1 at 0.5 like the clamp, never flat). `squash_rewards` is the one formula.
* `RowSeededSampler`: draws the next token of every row from its OWN generator (seeded per prompt and
  sample) and returns a one-hot score row, so `generate`'s own sampling can only pick that token. A
  prompt's samples then do not depend on which batch it is in or on the padding of that batch.
"""

from __future__ import annotations

import logging

import torch
from transformers import LogitsProcessor

from bench.errors import ConfigError, ModelError
from bench.rewards.base import PrefixCache, RewardModel

log = logging.getLogger(__name__)

DIRECTIONS = ("away", "toward")
REWARD_RULES = ("clamp", "centered", "sigmoid")  # clamp: the papers' rule (docs/challenging.md)
SIGMOID_SLOPE = 4.0  # sigmoid(4 (r - 0.5)) has slope 1 at r = 0.5, as the clamp has inside [0, 1]


def squash_rewards(r: torch.Tensor, rule: str = "clamp") -> torch.Tensor:
    """Raw rewards [..., k] of one step's k candidates -> r in [0, 1] that decoding adds as beta * r.

    `centered` subtracts each row's mean over its k candidates (the last axis) and adds 0.5 before the clamp:
    a per-row shift, which alone would not change the softmax over the candidates, but keeps candidates the
    clamp would flatten (all rated > 1 after a toxic prefix) apart."""
    if rule == "clamp":
        return r.clamp(0.0, 1.0)
    if rule == "centered":
        return (r - r.mean(dim=-1, keepdim=True) + 0.5).clamp(0.0, 1.0)
    if rule == "sigmoid":
        return torch.sigmoid(SIGMOID_SLOPE * (r - 0.5))
    raise ConfigError(f"reward rule '{rule}': expected one of {list(REWARD_RULES)}")


class TopKRewardLogitsProcessor(LogitsProcessor):
    """RAD-style top-k reweighting; keeps the reward model's prefix cache across decoding steps."""

    def __init__(
        self,
        reward_model: RewardModel | None,
        top_k: int,
        beta: float = 0.0,
        direction: str = "away",
        attribute: str | None = None,
        attention_mask: torch.Tensor | None = None,
        vocab_size: int | None = None,
        reward_rule: str = "clamp",
    ) -> None:
        if direction not in DIRECTIONS:
            raise ConfigError(f"direction '{direction}': expected one of {list(DIRECTIONS)}")
        if reward_rule not in REWARD_RULES:
            raise ConfigError(f"reward rule '{reward_rule}': expected one of {list(REWARD_RULES)}")
        self.reward_rule = reward_rule
        beta = float(beta)
        if not (beta >= 0 and beta != float("inf")):  # also refuses NaN
            raise ConfigError(f"beta={beta}: expected a finite number >= 0")
        top_k = int(top_k)
        if vocab_size is None and reward_model is not None:
            vocab_size = reward_model.vocab_size
        if top_k < 1 or (vocab_size is not None and top_k > vocab_size):
            raise ConfigError(f"top_k={top_k}: expected 1 <= top_k <= vocabulary size ({vocab_size})")
        self.reward_model = reward_model
        self.top_k = top_k
        self.beta = beta
        self.direction = direction
        self.steer_index = 0
        if reward_model is not None:
            cfg = reward_model.config
            name = attribute or cfg.steer_attribute
            if name not in cfg.attributes:
                raise ConfigError(f"attribute '{name}': the reward model outputs {cfg.attributes}")
            self.steer_index = cfg.attributes.index(name)
            self.attribute = name
        else:
            self.attribute = attribute
        self.state: PrefixCache | None = reward_model.new_state() if reward_model is not None else None
        self.attention_mask = attention_mask
        self._mask_prompt: torch.Tensor | None = None  # the prompt tokens the mask was first used with
        self.reward_calls = 0

    @property
    def guided(self) -> bool:
        return self.reward_model is not None and self.beta > 0

    def set_attention_mask(self, attention_mask: torch.Tensor | None) -> None:
        """The (left-padded) prompts' mask for the next `generate` call, already expanded per sample."""
        self.attention_mask = attention_mask
        self._mask_prompt = None

    def reset(self) -> None:
        if self.state is not None:
            self.state.reset()

    def full_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Prompt mask followed by ones for the generated positions."""
        b, t = input_ids.shape
        prompt = self.attention_mask
        if prompt is None:
            return torch.ones_like(input_ids)
        prompt = prompt.to(input_ids.device, dtype=torch.long)
        if prompt.shape[0] != b or prompt.shape[1] > t:
            raise ConfigError(
                f"attention_mask of shape {tuple(prompt.shape)} does not fit the batch {tuple(input_ids.shape)}: "
                "pass the prompts' mask expanded for num_return_sequences (set_attention_mask before generate)"
            )
        # A mask belongs to one batch of prompts: reused on another batch of the same shape it would silently
        # mark the wrong tokens as padding.
        p = prompt.shape[1]
        if self._mask_prompt is None:
            self._mask_prompt = input_ids[:, :p].clone()
        elif not torch.equal(self._mask_prompt.to(input_ids.device), input_ids[:, :p]):
            raise ConfigError(
                "the attention mask set on this processor belongs to another batch of prompts: "
                "call set_attention_mask(mask) before each generate call"
            )
        return torch.cat([prompt, torch.ones_like(input_ids[:, p:])], dim=1)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        _refuse_non_finite(scores, "the base LM's next-token logits", allow_neg_inf=True)
        k = min(self.top_k, scores.shape[-1])
        values, idx = scores.topk(k, dim=-1)
        if self.guided:
            mask = self.full_mask(input_ids)
            rm_device = self.reward_model.device
            r = self.reward_model.score_candidates(
                input_ids.to(rm_device), mask.to(rm_device), idx.to(rm_device), self.state
            )
            self.reward_calls += self.reward_model.calls_per_token(k)
            r = r[..., self.steer_index].float()
            _refuse_non_finite(
                r,
                f"reward model {getattr(self.reward_model, 'source', None) or self.reward_model.config.backbone} "
                f"({self.reward_model.config.parametrization}), output '{self.attribute}'",
            )
            r = squash_rewards(r, self.reward_rule).to(scores.device)
            bonus = self.beta * (r if self.direction == "toward" else 1.0 - r)
            values = values + bonus.to(values.dtype)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(-1, idx, values)
        return out


def _refuse_non_finite(t: torch.Tensor, source: str, allow_neg_inf: bool = False) -> None:
    """A NaN / Inf reward or logit is an error naming its source, never a silent sample (clamp keeps NaN, and
    sampling from a NaN distribution picks the last token). -inf logits are legal: a token already masked."""
    bad = torch.isnan(t) | (t == float("inf")) if allow_neg_inf else ~torch.isfinite(t)
    if bool(bad.any()):
        n = int(bad.sum())
        raise ModelError(
            f"{source}: {n} non-finite value(s) (NaN/Inf) during decoding; expected finite numbers "
            "(are the model's weights corrupt?)"
        )


def row_seed(seed: int, key: str, sample: int) -> int:
    """A 63-bit seed from (run seed, prompt key, sample index), stable across Python runs and platforms."""
    import hashlib

    digest = hashlib.sha256(f"{int(seed)}\x00{key}\x00{int(sample)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class RowSeededSampler(LogitsProcessor):
    """Sample each row with its own CPU generator; return 0 at the drawn token and -inf elsewhere.

    Inverse-CDF sampling with one uniform per row and step: the draw of row i depends only on its own
    scores and its own generator, never on the other rows of the batch.
    """

    def __init__(self, seeds: list[int]) -> None:
        self.seeds = [int(s) for s in seeds]
        self.generators = []
        self.reset()

    def reset(self) -> None:
        self.generators = [torch.Generator(device="cpu").manual_seed(s) for s in self.seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        b = scores.shape[0]
        if b != len(self.generators):
            raise ConfigError(f"sampler has {len(self.generators)} row seeds but the batch has {b} rows")
        u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in self.generators])
        probs = torch.softmax(scores.double(), dim=-1)
        cdf = probs.cumsum(-1)
        target = (u.to(scores.device) * cdf[:, -1]).unsqueeze(-1)
        token = torch.searchsorted(cdf, target, right=True).clamp(max=scores.shape[-1] - 1)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(-1, token, 0.0)
        return out
