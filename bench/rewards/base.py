"""The one interface every reward parametrization implements.

Decoding, training, latency and rank analysis only talk to `RewardModel`:

* training:   `forward(input_ids, attention_mask) -> [B, L, m]`, the reward of every prefix
  `x_{<=t}` read as "prefix x_{<t} followed by token x_t" (position 0 has no prefix and is 0; the
  data collator puts a BOS token there, and the losses give it weight 0);
* decoding:   `score_candidates(input_ids, attention_mask, candidates, state) -> [B, k, m]`, the reward of
  appending each of k candidate tokens to each row, reusing the reward model's KV cache in `state`;
* analysis:   `score_vocab(...) -> [B, V, m]` (all next tokens), `rank_bound()`, `step_cost(k)`, `counting()`.

One input convention: the reward model always reads ITS OWN BOS first, as the training collator feeds it.
`forward` takes ids that already start with it (the collator puts it there); the decoding-time methods
(`score_candidates`, `score_vocab`) take the text so far WITHOUT it (the base LM's ids, left-padded) and
prepend a BOS column with mask 1 themselves (`with_bos`): the base LM's ids are never changed, and
`score_candidates(p, v)` equals `forward(BOS + p + v)` at its last position.

Every model saves to / loads from a folder holding `reward_config.json` and `model.safetensors`
(only the trained tensors; the frozen backbone parts are rebuilt from `config.backbone`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
from collections.abc import Iterator
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

    def copy(self) -> RewardConfig:
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
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> RewardConfig:
        known = {f.name for f in dataclasses.fields(cls)} | {"baseline"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"{source}: unknown reward config key(s) {unknown}; expected a subset of {sorted(known)}")
        if "parametrization" not in data or "backbone" not in data:
            raise ModelError(f"{source}: reward config needs 'parametrization' and 'backbone'")
        _check_types(data, source)
        data = dict(data)
        if "baseline" in data:  # folders saved before the registry stored it; the name now says it
            from bench.rewards.registry import get

            saved, implied = bool(data.pop("baseline")), get(data["parametrization"]).has_baseline
            if saved != implied:
                raise ModelError(
                    f"{source}: 'baseline': {saved} contradicts parametrization "
                    f"'{data['parametrization']}' (baseline {implied})"
                )
        return cls(**data)


# key -> (accepted types, what the message says); bool is not an int here
_CONFIG_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "parametrization": ((str,), "a string"),
    "backbone": ((str,), "a model spec string"),
    "num_layers": ((int, type(None)), "an integer >= 1 or null"),
    "attributes": ((list,), "a list of strings"),
    "steer_attribute": ((str, type(None)), "a string or null"),
    "mlp_rank": ((int, type(None)), "an integer >= 1 or null"),
    "baseline": ((bool,), "true or false"),
    "dtype": ((str,), "a dtype name"),
    "extra": ((dict,), "an object"),
}


def _check_types(data: dict[str, Any], source: str) -> None:
    """A hand-edited reward_config.json with a wrong type is a one-line error, not a traceback later."""
    for key, value in data.items():
        types, what = _CONFIG_TYPES.get(key, ((object,), ""))
        bad = not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
        if key in ("num_layers", "mlp_rank") and isinstance(value, int) and not isinstance(value, bool) and value < 1:
            bad = True
        if key == "attributes" and isinstance(value, list) and not all(isinstance(a, str) for a in value):
            bad = True
        if bad:
            raise ModelError(f"{source}: key '{key}' = {value!r}: expected {what}")


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


def bos_token_id(tokenizer) -> int:
    """The token a reward model reads first: its tokenizer's BOS, else EOS (GPT-2 and SmolLM2 add none)."""
    tid = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if tid is None:
        raise ModelError("tokenizer has neither a BOS nor an EOS token to start texts with")
    return int(tid)


def prepend_column(
    token: int, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """[tok, ids...] with mask [1, mask...]: positions come from the mask, so [BOS pad p] reads as BOS + p."""
    b = input_ids.shape[0]  # (an empty prefix [B, 0] becomes BOS alone)
    return (
        torch.cat([input_ids.new_full((b, 1), int(token)), input_ids], dim=1),
        torch.cat([attention_mask.new_ones((b, 1)), attention_mask], dim=1),
    )


class RewardCounter:
    """What a reward model actually computed, from forward pre-hooks on its trunk and its reward head.

    * `trunk_forwards`: calls of the trunk (RAD batched: 1 per step; RAD loop: 1 + k; ARM: 1);
    * `trunk_positions`: token positions the trunk read, summed over calls, per row;
    * `head_rows`: reward evaluations per batch row (RAD: k candidates per step; ARM: 1 prefix, whose single
      evaluation scores every token).
    """

    def __init__(self, trunk: nn.Module, head: nn.Module) -> None:
        self.trunk_forwards = 0
        self.trunk_positions = 0
        self.head_rows = 0
        self._handles = [
            trunk.register_forward_pre_hook(self._on_trunk, with_kwargs=True),
            head.register_forward_pre_hook(self._on_head),
        ]

    def _on_trunk(self, _module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.trunk_forwards += 1
        if ids is not None:
            self.trunk_positions += int(ids.shape[-1])

    def _on_head(self, _module, args) -> None:
        x = args[0]
        self.head_rows += int(x.numel() // x.shape[-1]) // max(int(x.shape[0]), 1)

    def reset(self) -> None:
        self.trunk_forwards = self.trunk_positions = self.head_rows = 0

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


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
    """Base class. Subclasses build `self.backbone` (the trunk) and implement the abstract methods; their names
    are registered in the registry. Callers outside `bench.rewards` use only the public methods and properties."""

    def __init__(self, config: RewardConfig) -> None:
        super().__init__()
        self.config = config.copy()  # subclasses may fill defaults in self.config; the caller's stays as given

    # ---- what callers may ask ------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the trunk's parameters live (inputs go there)."""
        return self.backbone.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The trunk's parameter dtype."""
        return self.backbone.get_input_embeddings().weight.dtype

    @property
    def hidden_size(self) -> int:
        """Width d of the trunk's hidden states."""
        return int(self.backbone.config.hidden_size)

    @property
    def tokenizer(self):
        """The reward model's own tokenizer (left padding), from its backbone spec."""
        from bench.models.loading import load_tokenizer

        return load_tokenizer(self.config.backbone)

    @property
    def bos_token_id(self) -> int:
        """The token the reward model reads first (training and decoding alike)."""
        bos = getattr(self, "_bos_token_id", None)
        if bos is None:
            bos = bos_token_id(self.tokenizer)
            self._bos_token_id = bos
        return bos

    def with_bos(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepend the reward model's BOS (mask 1) to a (left-padded) batch: what decoding-time scoring reads."""
        return prepend_column(self.bos_token_id, input_ids, attention_mask)

    def rank_bound(self) -> int | None:
        """Largest rank R[prefix, token] of one attribute can have by construction (None: unconstrained)."""
        return None

    def step_cost(self, k: int) -> dict[str, int]:
        """Weights used per generated token with k candidates (2 FLOPs per weight per position):
        `trunk_params` (non-embedding trunk weights), `extra_params` (trained reward weights outside the trunk),
        `positions` (token positions the trunk reads per generated token)."""
        raise NotImplementedError

    def _trunk_module(self) -> nn.Module:
        return self.backbone

    def _head_module(self) -> nn.Module:
        """The module that turns trunk states into rewards (one call per reward evaluation)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def counting(self) -> Iterator[RewardCounter]:
        """Count trunk forwards, trunk positions and reward evaluations while the block runs."""
        counter = RewardCounter(self._trunk_module(), self._head_module())
        try:
            yield counter
        finally:
            counter.remove()

    def _trunk_param_count(self) -> int:
        """Non-embedding parameters of the trunk (a tied output embedding is counted once, as the input one)."""
        skip = {id(self.backbone.get_input_embeddings().weight)}
        seen, n = set(), 0
        for p in self.backbone.parameters():
            if id(p) in seen or id(p) in skip:
                continue
            seen.add(id(p))
            n += p.numel()
        return n

    # ---- training -----------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Rewards of every prefix: [B, L, m]; out[:, t] is r(x_{<t}, x_t); 0 at each row's first real token and at padding."""
        raise NotImplementedError

    # ---- decoding -----------------------------------------------------------------------------
    def new_state(self) -> PrefixCache:
        """A fresh decoding state (this parametrization's `PrefixCache` subclass), one per decoding run."""
        return PrefixCache()

    def score_candidates(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        candidates: torch.Tensor,
        state: PrefixCache | None = None,
    ) -> torch.Tensor:
        """Rewards [B, k, m] of appending candidates[b, j] to row b of input_ids (no BOS: the model adds its own);
        equal to `forward(BOS + row + candidate)` at its last position."""
        raise NotImplementedError

    def score_vocab(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        state: PrefixCache | None = None,
        chunk_size: int = 1024,
    ) -> torch.Tensor:
        """Rewards [B, V, m] of every next token after BOS + row (ARM: one forward; RAD: V candidates in chunks)."""
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
    def from_pretrained(cls, folder: str | os.PathLike, device: str | None = "cpu", **kwargs) -> RewardModel:
        """Load a folder of any parametrization registered with this class (the base class: any at all)."""
        from bench.rewards.registry import load_reward_model, names_of_class

        expected = None if cls is RewardModel else names_of_class(cls)
        if expected == []:
            raise ModelError(f"{cls.__name__} is not registered for any parametrization (bench.rewards.registry)")
        return load_reward_model(folder, device=device, expected_parametrization=expected, **kwargs)
