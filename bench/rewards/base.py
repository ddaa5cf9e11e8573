"""The one interface every reward parametrization implements.

Decoding, training, latency and rank analysis only talk to `RewardModel`:

* training:   `forward(input_ids, attention_mask) -> [B, L, m]`, the reward of every prefix
  `x_{<=t}` read as "prefix x_{<t} followed by token x_t" (position 0 has no prefix and is 0; the
  data collator puts a BOS token there, and the losses give it weight 0);
* decoding:   `score_candidates(input_ids, attention_mask, candidates, state) -> [B, k, m]`, the reward of
  appending each of k candidate tokens to each row, reusing the reward model's KV cache in `state`;
* analysis:   `score_vocab(...) -> [B, V, m]` (all next tokens), and `calls_per_token(k)` for latency.

Every model saves to / loads from a folder holding `reward_config.json` and `model.safetensors`
(only the trained tensors; the frozen backbone parts are rebuilt from `config.backbone`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bench.errors import ModelError

log = logging.getLogger(__name__)

CONFIG_NAME = "reward_config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class RewardConfig:
    """Everything needed to rebuild a reward model from its folder alone."""

    parametrization: str  # a name registered in bench.rewards.registry
    backbone: str  # model spec (hub id, folder, embedded:..., random:...)
    num_layers: int | None = None  # keep the first N transformer blocks of the backbone
    attributes: list[str] = field(default_factory=lambda: ["toxicity"])  # names of the m outputs
    steer_attribute: str | None = None  # which output steers decoding (default: the first)
    mlp_rank: int | None = None  # arm-mlp: bottleneck r (default: hidden size)
    dtype: str = "float32"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.attributes:
            raise ModelError("reward config: 'attributes' must name at least one output")
        if self.steer_attribute is None:
            self.steer_attribute = self.attributes[0]
        if self.steer_attribute not in self.attributes:
            raise ModelError(
                f"reward config: steer_attribute '{self.steer_attribute}' is not one of attributes {self.attributes}"
            )

    @property
    def baseline(self) -> bool:
        """Whether the model adds the prefix baseline w^T h(x): a property of the parametrization (registry)."""
        from bench.rewards.registry import get

        return get(self.parametrization).has_baseline

    def copy(self) -> "RewardConfig":
        """A deep copy: models keep their own config, so building one never changes the caller's."""
        return copy.deepcopy(self)

    @property
    def num_outputs(self) -> int:
        return len(self.attributes)

    @property
    def steer_index(self) -> int:
        return self.attributes.index(self.steer_attribute)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> "RewardConfig":
        known = {f.name for f in dataclasses.fields(cls)} | {"baseline"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"{source}: unknown reward config key(s) {unknown}; expected a subset of {sorted(known)}")
        if "parametrization" not in data or "backbone" not in data:
            raise ModelError(f"{source}: reward config needs 'parametrization' and 'backbone'")
        data = dict(data)
        if "baseline" in data:  # folders saved before the registry stored it; the name now says it
            from bench.rewards.registry import get

            saved, implied = bool(data.pop("baseline")), get(data["parametrization"]).has_baseline
            if saved != implied:
                raise ModelError(f"{source}: 'baseline': {saved} contradicts parametrization "
                                 f"'{data['parametrization']}' (baseline {implied})")
        return cls(**data)


def cache_kwarg(module: nn.Module) -> str:
    """transformers >= 5.2x names the KV-cache argument `cache`; earlier 5.x used `past_key_values`."""
    import inspect

    params = inspect.signature(module.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def output_cache(out):
    """The KV cache of a model output, under either name."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore left padding: a prompt gets the same positions alone or in a padded batch."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.clamp(min=0)


class PrefixCache:
    """The reward model's KV cache of the tokens it has already read, per decoding run.

    `plan(input_ids, attention_mask)` says which tokens are new since the last call. When the batch does
    not extend what the cache holds (a new `generate` call, another batch, a different prompt), the cache
    is reset rather than silently reused.
    """

    def __init__(self) -> None:
        self.resets = 0  # how often a batch did not extend the cache (a new generate call, another batch)
        self.reset()

    def reset(self) -> None:
        self.past_key_values = None
        self.ids: torch.Tensor | None = None  # [B, P] tokens whose keys/values are cached
        self.mask: torch.Tensor | None = None  # [B, P] their attention mask

    @property
    def length(self) -> int:
        return 0 if self.ids is None else int(self.ids.shape[1])

    def plan(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (new_ids, new_mask): the suffix of `input_ids` not in the cache (resetting if needed)."""
        if self.ids is not None:
            p = self.length
            extends = (
                input_ids.shape[0] == self.ids.shape[0]
                and input_ids.shape[1] >= p
                and torch.equal(input_ids[:, :p], self.ids)
                and torch.equal(attention_mask[:, :p].to(self.mask.dtype), self.mask)
            )
            if not extends:
                self.reset()
                self.resets += 1
        p = self.length
        return input_ids[:, p:], attention_mask[:, p:]

    def commit(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, past_key_values) -> None:
        """Record that the cache now holds exactly `input_ids` (and nothing else)."""
        self.ids = input_ids.clone()
        self.mask = attention_mask.clone()
        self.past_key_values = past_key_values


class RewardModel(nn.Module):
    """Base class. Subclasses implement the abstract methods; their names are registered in the registry."""

    def __init__(self, config: RewardConfig) -> None:
        super().__init__()
        self.config = config.copy()  # subclasses may fill defaults in self.config; the caller's stays as given

    # ---- training -----------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Rewards of every prefix: [B, L, m]; out[:, t] is r(x_{<t}, x_t); 0 at each row's first real token and at padding."""
        raise NotImplementedError

    # ---- decoding -----------------------------------------------------------------------------
    def new_state(self) -> PrefixCache:
        return PrefixCache()

    def score_candidates(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, candidates: torch.Tensor,
                         state: PrefixCache | None = None) -> torch.Tensor:
        """Rewards [B, k, m] of appending candidates[b, j] to row b of input_ids."""
        raise NotImplementedError

    def score_vocab(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    state: PrefixCache | None = None, chunk_size: int = 1024) -> torch.Tensor:
        """Rewards [B, V, m] of every next token (ARM: one forward; RAD: V candidates in chunks)."""
        raise NotImplementedError

    def calls_per_token(self, k: int) -> int:
        """Reward-model evaluations per generated token (RAD: k candidates; ARM: 1)."""
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    # ---- persistence --------------------------------------------------------------------------
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors that training changes (frozen ones are rebuilt from the backbone on load)."""
        frozen = {n for n, p in self.named_parameters() if not p.requires_grad}
        return {k: v.detach().contiguous() for k, v in self.state_dict().items() if k not in frozen}

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write config + trained tensors atomically (temporary folder, then rename)."""
        from bench.rewards.registry import save_reward_model

        save_reward_model(self, folder)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | None = "cpu", **kwargs) -> "RewardModel":
        """Load a folder of any parametrization registered with this class (the base class: any at all)."""
        from bench.rewards.registry import load_reward_model, names_of_class

        expected = None if cls is RewardModel else names_of_class(cls)
        if expected == []:
            raise ModelError(f"{cls.__name__} is not registered for any parametrization (bench.rewards.registry)")
        return load_reward_model(folder, device=device, expected_parametrization=expected, **kwargs)
