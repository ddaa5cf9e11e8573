"""Plain or reward-guided sampling of continuations with `model.generate`.

Nothing is applied silently: a fresh `GenerationConfig` sets temperature 1, top_k 0, top_p 1 and no
penalties explicitly (transformers 5 fills unset fields from the model's generation_config.json and
then from its global defaults, which include top_k=50), so the only changes to the base LM's
distribution are our two processors: top-k (+ reward) reweighting, then `RowSeededSampler`.

Seeding: row j of prompt p is sampled with its own generator seeded by sha256(seed, key_p, j)
(key = the prompt's id, else its text), so a prompt's samples are the same alone, in any batch, with
any padding, and after a resume that skips completed prompts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import torch
from transformers import GenerationConfig, LogitsProcessorList

from bench.decoding.processors import RowSeededSampler, TopKRewardLogitsProcessor, row_seed
from bench.errors import ConfigError, DataError
from bench.rewards.base import RewardModel

log = logging.getLogger(__name__)


def context_length(model) -> int | None:
    cfg = model.config
    for key in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(cfg, key, None)
        if value:
            return int(value)
    return None


def check_reward_vocab(tokenizer, reward_model: RewardModel) -> None:
    """The base LM and the reward model must share one tokenizer (ids index the same strings)."""
    from bench.models.loading import check_same_vocab

    cfg = reward_model.config
    where = getattr(reward_model, "source", None)
    check_same_vocab(
        tokenizer,
        reward_model.tokenizer,
        "base LM",
        f"reward model {where + ' ' if where else ''}({cfg.parametrization}, backbone {cfg.backbone})",
    )


def sampling_config(tokenizer, num_samples: int, max_new_tokens: int) -> GenerationConfig:
    """Pure ancestral sampling at temperature 1: every warper switched off explicitly."""
    return GenerationConfig(
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        typical_p=1.0,
        min_p=None,
        epsilon_cutoff=0.0,
        eta_cutoff=0.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        min_length=0,
        max_new_tokens=int(max_new_tokens),
        num_beams=1,
        num_return_sequences=int(num_samples),
        use_cache=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )


def _validate(prompts: Sequence[str], tokenizer, model, max_new_tokens: int, keys: Sequence[str]) -> None:
    ctx = context_length(model)
    for i, (prompt, key) in enumerate(zip(prompts, keys)):
        if not isinstance(prompt, str) or not prompt:
            raise DataError(f"prompt {i} (id {key}): empty prompt; expected a non-empty string")
        n = len(tokenizer(prompt, add_special_tokens=True).input_ids)
        if n == 0:
            raise DataError(f"prompt {i} (id {key}): tokenizes to no tokens")
        if ctx is not None and n + max_new_tokens > ctx:
            raise DataError(
                f"prompt {i} (id {key}): {n} tokens + max_new_tokens {max_new_tokens} exceed the "
                f"base model's context of {ctx} tokens"
            )


def generate_continuations(
    base_model,
    tokenizer,
    prompts: list[str],
    reward_model: RewardModel | None = None,
    *,
    top_k: int,
    beta: float = 0.0,
    direction: str = "away",
    num_samples: int = 1,
    max_new_tokens: int = 20,
    batch_size: int = 8,
    seed: int = 0,
    attribute: str | None = None,
    keys: Sequence[str] | None = None,
    on_batch: Callable[[int, list[dict]], None] | None = None,
    stats: dict | None = None,
    progress: bool = True,
    reward_rule: str = "clamp",
) -> list[dict]:
    """Sample `num_samples` continuations per prompt; returns `{"id", "prompt", "continuations"}` per prompt.

    `keys` (default: the prompt texts) seed each prompt's samples and become the records' ids; `on_batch(start,
    records)` is called after each batch (for resumable partial files); `stats` receives token counts and
    timings. `reward_rule`: how raw rewards become [0, 1] (`bench.decoding.processors.squash_rewards`).
    """
    from bench.utils.progress import Progress

    if num_samples < 1 or max_new_tokens < 1 or batch_size < 1:
        raise ConfigError(
            f"num_samples={num_samples}, max_new_tokens={max_new_tokens}, batch_size={batch_size}: expected all >= 1"
        )
    keys = list(keys) if keys is not None else list(prompts)
    if len(keys) != len(prompts):
        raise ConfigError(f"{len(keys)} keys for {len(prompts)} prompts")
    if reward_model is not None:
        check_reward_vocab(tokenizer, reward_model)
    if tokenizer.padding_side != "left":
        raise ConfigError("the tokenizer must pad on the left for batched generation (use load_tokenizer)")
    _validate(prompts, tokenizer, base_model, max_new_tokens, keys)
    vocab = (
        int(base_model.get_output_embeddings().weight.shape[0])
        if base_model.get_output_embeddings() is not None
        else len(tokenizer)
    )
    proc = TopKRewardLogitsProcessor(
        reward_model, top_k, beta, direction, attribute, vocab_size=vocab, reward_rule=reward_rule
    )
    gen_config = sampling_config(tokenizer, num_samples, max_new_tokens)
    device = base_model.device
    records: list[dict] = []
    n_tokens = 0
    t0 = time.perf_counter()
    batches = range(0, len(prompts), batch_size)
    bar = Progress(len(prompts), "generate", "prompts", logger=log, enabled=progress)
    for start in batches:
        batch = prompts[start : start + batch_size]
        bkeys = keys[start : start + batch_size]
        enc = tokenizer(batch, return_tensors="pt", padding=True).to(device)
        mask = enc.attention_mask.repeat_interleave(num_samples, dim=0)
        proc.set_attention_mask(mask)
        sampler = RowSeededSampler([row_seed(seed, key, j) for key in bkeys for j in range(num_samples)])
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = base_model.generate(
                input_ids=enc.input_ids,
                attention_mask=enc.attention_mask,
                logits_processor=LogitsProcessorList([proc, sampler]),
                generation_config=gen_config,
            )
        new = out[:, enc.input_ids.shape[1] :].cpu()
        n_tokens += _count_tokens(new, tokenizer.eos_token_id)
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        batch_records = [
            {"id": key, "prompt": prompt, "continuations": texts[i * num_samples : (i + 1) * num_samples]}
            for i, (key, prompt) in enumerate(zip(bkeys, batch))
        ]
        records.extend(batch_records)
        if on_batch is not None:
            on_batch(start, batch_records)
        bar.update(len(batch))
    bar.close()
    wall = time.perf_counter() - t0
    if stats is not None:
        stats.update(
            generated_tokens=n_tokens,
            wall_time_s=wall,
            tokens_per_s=n_tokens / wall if wall > 0 else None,
            reward_calls=proc.reward_calls,
        )
    return records


def _count_tokens(new: torch.Tensor, eos_id: int | None) -> int:
    """Tokens actually generated per row: up to and including the first EOS."""
    if eos_id is None:
        return int(new.numel())
    is_eos = new == eos_id
    after = is_eos.long().cumsum(-1) - is_eos.long()  # number of EOS strictly before each position
    return int((after == 0).sum())
