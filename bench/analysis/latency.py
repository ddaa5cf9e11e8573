"""Fixed-protocol decoding latency: plain vs. RAD (batched and per-candidate loop) vs. ARM variants.

Why a harness of its own instead of `generate`: every decoding step is split into its phases (base-LM
forward, reward-model scoring, sampling) with a device synchronisation before each clock read, so the
share of time spent in the reward model is measured, not inferred. Reward-model work is counted by
forward hooks (trunk forwards, token positions the trunk reads, rows the reward head evaluates), not taken
from `calls_per_token`. Latency does not depend on the weights, so untrained / random-init models are fine.

Protocol per (method, batch size, new tokens, k): `warmup` untimed decodes, then `repeats` timed decodes of
`new_tokens` steps each from the same random prompt ids (all rows the same length, no padding, no EOS
stop); report the median over repeats and the spread (IQR, min, max). Plain decoding is re-timed in
alternation with each cell's repeats (`paired`), and ratios to plain use that paired median. `ms_per_token` is the wall time of
one decoding step (one new token for every row of the batch); `tokens_per_s` counts all rows.
"""

from __future__ import annotations

import logging
import math
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from bench.errors import ConfigError
from bench.rewards.base import PrefixCache, RewardConfig, RewardModel, cache_kwarg, output_cache

log = logging.getLogger(__name__)


def all_methods() -> list[str]:
    """"plain" plus every registered parametrization and its latency variants (e.g. rad-loop)."""
    from bench.rewards.registry import latency_methods

    return ["plain", *latency_methods()]


@dataclass
class LatencyConfig:
    """One sweep. `reward_models` maps a method to a trained folder; others are built untrained from `reward`."""

    base: str = "embedded:smollm2-135m"
    reward: str = "embedded:smollm2-135m"  # reward trunk backbone spec
    reward_layers: int | None = 6
    methods: list[str] = field(default_factory=lambda: ["plain", "rad", "rad-loop", "arm", "arm-baseline", "arm-mlp"])
    top_k: list[int] = field(default_factory=lambda: [10, 20, 40, 80])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32])
    new_tokens: list[int] = field(default_factory=lambda: [32])
    prompt_len: int = 16
    warmup: int = 1
    repeats: int = 5
    beta: float = 10.0
    mlp_rank: int = 16
    loop_max_k: int = 20  # rad-loop is k times slower: only run it up to this k
    dtype: str = "float32"
    device: str | None = None  # None: cuda if available else cpu
    seed: int = 0
    reward_models: dict[str, str] = field(default_factory=dict)
    paired: bool = True  # re-time plain decoding alternately with every cell (ratios robust to drift)

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in all_methods()]
        if bad:
            raise ConfigError(f"latency: unknown method(s) {bad}; expected a subset of {all_methods()}")
        for key in ("top_k", "batch_sizes", "new_tokens"):
            vals = getattr(self, key)
            if not vals or any(int(v) < 1 for v in vals):
                raise ConfigError(f"latency: '{key}' must be a non-empty list of positive integers, got {vals}")
        if self.repeats < 1 or self.warmup < 0:
            raise ConfigError(f"latency: need repeats >= 1 and warmup >= 0, got {self.repeats}, {self.warmup}")


# ------------------------------------------------------------------------------------ instrumentation
class RewardCounter:
    """Forward hooks on the reward trunk and head: what the reward model actually computed.

    * `trunk_forwards`: calls of the trunk (RAD batched: 1 per step; RAD loop: 1 + k; ARM: 1);
    * `trunk_positions`: token positions the trunk read, summed over calls, per row;
    * `head_rows`: reward evaluations = rows the head saw per batch row (RAD: k candidates; ARM: 1 prefix,
      whose single evaluation scores every token).
    """

    def __init__(self, model: RewardModel) -> None:
        self.trunk_forwards = 0
        self.trunk_positions = 0
        self.head_rows = 0
        self.handles = []
        trunk = getattr(model, "backbone", None)
        head = getattr(model, "head", None) or getattr(model, "proj", None)
        if trunk is None or head is None:
            raise ConfigError(f"latency: cannot instrument {type(model).__name__} (needs .backbone and .head/.proj)")
        self.handles.append(trunk.register_forward_pre_hook(self._on_trunk, with_kwargs=True))
        self.handles.append(head.register_forward_pre_hook(self._on_head))

    def _on_trunk(self, _module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.trunk_forwards += 1
        if ids is not None:
            self.trunk_positions += int(ids.shape[-1])

    def _on_head(self, _module, args) -> None:
        x = args[0]
        batch = int(x.shape[0])
        self.head_rows += int(x.numel() // x.shape[-1]) // max(batch, 1)

    def reset(self) -> None:
        self.trunk_forwards = self.trunk_positions = self.head_rows = 0

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


# ------------------------------------------------------------------------------------ timing helpers
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def spread(values: list[float]) -> dict[str, float]:
    """Median, inter-quartile range, min and max of repeated measurements."""
    vals = sorted(values)
    if len(vals) == 1:
        q1 = q3 = vals[0]
    else:
        q = statistics.quantiles(vals, n=4, method="inclusive")
        q1, q3 = q[0], q[2]
    return {"median": statistics.median(vals), "q1": q1, "q3": q3, "min": vals[0], "max": vals[-1]}




def count_params(module: nn.Module, skip_embeddings: bool = True) -> int:
    skip = set()
    if skip_embeddings and hasattr(module, "get_input_embeddings") and module.get_input_embeddings() is not None:
        skip.add(id(module.get_input_embeddings().weight))
    seen, n = set(), 0
    for p in module.parameters():
        if id(p) in seen or id(p) in skip:
            continue
        seen.add(id(p))
        n += p.numel()
    return n


# ------------------------------------------------------------------------------------ the decoding loop
@dataclass
class RunResult:
    step_ms: float  # mean wall time of one step in this run
    lm_ms: float
    reward_ms: float
    steps: int


def make_scorer(method: str, model: RewardModel | None) -> Callable | None:
    if method == "plain" or model is None:
        return None
    if method == "rad-loop":
        loop = getattr(model, "score_candidates_loop", None)
        if loop is None:
            raise ConfigError("latency: method 'rad-loop' needs a RAD model with score_candidates_loop")
        return loop
    return model.score_candidates


@torch.no_grad()
def decode_once(lm, scorer: Callable | None, state: PrefixCache | None, prompt: torch.Tensor, new_tokens: int,
                k: int, beta: float, steer: int, generator: torch.Generator, device: torch.device,
                on_step: Callable[[], None] | None = None) -> RunResult:
    """Top-k sampling for `new_tokens` steps; with a scorer, logits += beta * clamp(r, 0, 1) on the top-k."""
    kw = cache_kwarg(lm)
    ids = prompt
    mask = torch.ones_like(ids)
    cache = None
    step_in = ids
    lm_t = rew_t = tot_t = 0.0
    for _ in range(new_tokens):
        synchronize(device)
        t0 = time.perf_counter()
        out = lm(input_ids=step_in, attention_mask=mask, use_cache=True, logits_to_keep=1, **{kw: cache})
        cache = output_cache(out)
        logits = out.logits[:, -1].float()
        synchronize(device)
        t1 = time.perf_counter()
        top_v, top_i = logits.topk(k, dim=-1)
        if scorer is not None:
            r = scorer(ids, mask, top_i, state)[..., steer].float()
            top_v = top_v + beta * r.clamp(0, 1)
        synchronize(device)
        t2 = time.perf_counter()
        probs = torch.softmax(top_v, dim=-1)
        choice = torch.multinomial(probs, 1, generator=generator)
        nxt = top_i.gather(1, choice)
        ids = torch.cat([ids, nxt], dim=1)
        mask = torch.cat([mask, torch.ones_like(nxt)], dim=1)
        step_in = nxt
        synchronize(device)
        t3 = time.perf_counter()
        lm_t += t1 - t0
        rew_t += t2 - t1
        tot_t += t3 - t0
        if on_step is not None:
            on_step()
    n = max(new_tokens, 1)
    return RunResult(step_ms=1e3 * tot_t / n, lm_ms=1e3 * lm_t / n, reward_ms=1e3 * rew_t / n, steps=new_tokens)


# ------------------------------------------------------------------------------------ the sweep
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def protocol(cfg: LatencyConfig, device: torch.device) -> dict[str, Any]:
    """What every output row carries, so numbers are never read without how they were taken."""
    import transformers

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_name()
    return {
        "device": device.type,
        "device_name": name,
        "dtype": cfg.dtype,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "warmup": cfg.warmup,
        "repeats": cfg.repeats,
        "sync": "torch.cuda.synchronize before each clock read" if device.type == "cuda" else "none needed (CPU)",
        "base": cfg.base,
        "reward": cfg.reward + (f" (first {cfg.reward_layers} layers)" if cfg.reward_layers else ""),
        "prompt_len": cfg.prompt_len,
    }


def build_models(cfg: LatencyConfig, device: torch.device) -> tuple[nn.Module, dict[str, RewardModel]]:
    from bench.models.loading import load_causal_lm
    from bench.rewards.registry import build_reward_model, get, latency_methods, load_reward_model

    lm = load_causal_lm(cfg.base, dtype=cfg.dtype, device=str(device))
    models: dict[str, RewardModel] = {}
    for method in cfg.methods:
        if method == "plain":
            continue
        param = latency_methods()[method]
        if param in models:
            models[method] = models[param]
            continue
        folder = cfg.reward_models.get(param)
        if folder:
            rm = load_reward_model(folder, device=str(device), expected_parametrization=param)
        else:
            rc = RewardConfig(parametrization=param, backbone=cfg.reward, num_layers=cfg.reward_layers,
                              dtype=cfg.dtype, mlp_rank=cfg.mlp_rank if get(param).mlp_rank else None)
            rm = build_reward_model(rc, device=str(device))
        rm.eval()
        models[method] = rm
        if method == "rad" and "rad-loop" in cfg.methods:
            models["rad-loop"] = rm
    return lm, models


def flops_limit(lm: nn.Module, rm: RewardModel | None, method: str, k: int) -> float:
    """1 + reward FLOPs / LM FLOPs per step, from parameter counts (2 FLOPs per weight per token position).

    The LM counts its non-embedding weights plus the output projection over the vocabulary; a RAD step reads
    1 new prefix token + k candidates (the loop: the same positions in k+1 calls); ARM reads 1 position.
    """
    if rm is None or method == "plain":
        return 1.0
    emb = lm.get_input_embeddings().weight
    lm_cost = count_params(lm.base_model) + emb.numel()  # + LM head (V x d), tied or not
    trunk = count_params(rm.backbone)
    positions = 1 + k if method in ("rad", "rad-loop") else 1
    extra = sum(p.numel() for n, p in rm.named_parameters() if not n.startswith("backbone.") and p.requires_grad
                and n.startswith(("proj", "baseline", "head")))
    return 1.0 + (positions * trunk + extra) / lm_cost


def run_sweep(cfg: LatencyConfig, lm: nn.Module | None = None, models: dict[str, RewardModel] | None = None,
              progress: bool = True) -> list[dict[str, Any]]:
    """Measure every (batch, new_tokens, method, k) cell; rows carry the protocol and the ratios to plain."""
    from tqdm.auto import tqdm

    from bench.models.loading import resolve_device

    device = resolve_device(cfg.device)
    if lm is None or models is None:
        lm, models = build_models(cfg, device)
    proto = protocol(cfg, device)
    vocab = int(lm.get_input_embeddings().weight.shape[0])
    rows: list[dict[str, Any]] = []
    cells = [(b, t, m, k) for b in cfg.batch_sizes for t in cfg.new_tokens for m in cfg.methods
             for k in (cfg.top_k if m != "plain" else [max(cfg.top_k)])
             if not (m == "rad-loop" and k > cfg.loop_max_k)]
    bar = tqdm(cells, desc="latency", disable=not progress)
    for b, t, method, k in bar:
        bar.set_postfix_str(f"{method} B={b} T={t} k={k}")
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        prompt = torch.randint(0, vocab, (b, cfg.prompt_len), generator=gen).to(device)
        rm = models.get(method)
        scorer = make_scorer(method, rm)
        steer = rm.config.steer_index if rm is not None else 0
        counter = RewardCounter(rm) if rm is not None else None
        try:
            row = _measure_cell(cfg, lm, rm, scorer, counter, prompt, t, k, steer, device)
        except torch.OutOfMemoryError:
            log.warning("latency: %s B=%d T=%d k=%d does not fit in memory; skipped", method, b, t, k)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        finally:
            if counter is not None:
                counter.remove()
        row.update({"method": method, "batch_size": b, "new_tokens": t, "top_k": k if method != "plain" else 0,
                    "limit_flops": flops_limit(lm, rm, method, k)})
        row.update(proto)
        rows.append(row)
    add_ratios(rows)
    return rows


def _measure_cell(cfg, lm, rm, scorer, counter, prompt, t, k, steer, device) -> dict[str, Any]:
    gen_device = device.type
    peak_rss = [0]

    def sample_rss() -> None:
        if device.type != "cuda":
            peak_rss[0] = max(peak_rss[0], _rss_bytes())

    def once() -> RunResult:
        state = rm.new_state() if rm is not None else None
        g = torch.Generator(device=gen_device).manual_seed(cfg.seed)
        return decode_once(lm, scorer, state, prompt, t, k, cfg.beta, steer, g, device, on_step=sample_rss)

    def once_plain() -> RunResult:
        g = torch.Generator(device=gen_device).manual_seed(cfg.seed)
        return decode_once(lm, None, None, prompt, t, k, cfg.beta, steer, g, device)

    paired = cfg.paired and rm is not None
    for _ in range(cfg.warmup):
        once()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if counter is not None:
        counter.reset()
    runs, plains = [], []
    for _ in range(cfg.repeats):  # paired: plain and this method alternate, so slow drift hits both alike
        if paired:
            plains.append(once_plain())
        runs.append(once())
    steps = sum(r.steps for r in runs)
    step = spread([r.step_ms for r in runs])
    lm_ms = statistics.median(r.lm_ms for r in runs)
    rew_ms = statistics.median(r.reward_ms for r in runs)
    b = prompt.shape[0]
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_rss[0]
    return {
        "ms_per_token": step["median"],
        "ms_q1": step["q1"],
        "ms_q3": step["q3"],
        "ms_min": step["min"],
        "ms_max": step["max"],
        "tokens_per_s": 1e3 * b / step["median"],
        "lm_ms": lm_ms,
        "reward_ms": rew_ms,
        "reward_share": rew_ms / step["median"] if step["median"] > 0 else math.nan,
        "trunk_forwards_per_token": counter.trunk_forwards / steps if counter else 0.0,
        "trunk_positions_per_token": counter.trunk_positions / steps if counter else 0.0,
        "reward_calls_per_token": counter.head_rows / steps if counter else 0.0,
        "peak_mem_mb": peak / 2**20,
        "peak_mem_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process RSS (psutil)",
        "plain_ms_paired": statistics.median(p.step_ms for p in plains) if plains else math.nan,
        "plain_lm_ms_paired": statistics.median(p.lm_ms for p in plains) if plains else math.nan,
    }


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each method's time over plain decoding of the same (batch, new tokens) in the same run, and its limit.

    With `paired` (default) plain decoding is re-timed in alternation with every cell's repeats and the ratio
    is median(method) / median(paired plain): on a shared, noisy machine a plain row timed minutes earlier
    is not a fair reference. `limit_measured` = 1 + (median reward-model time of this cell) / (median plain LM step): what the method
    would cost if nothing but the reward forward were added to plain decoding.
    """
    plain = {(r["batch_size"], r["new_tokens"]): r for r in rows if r["method"] == "plain"}
    for r in rows:
        if not math.isnan(r.get("plain_ms_paired", math.nan)):  # plain timed in alternation with this cell
            r["ratio_to_plain"] = r["ms_per_token"] / r["plain_ms_paired"]
            r["limit_measured"] = 1.0 + r["reward_ms"] / r["plain_lm_ms_paired"]
            r["ratio_over_limit"] = r["ratio_to_plain"] / r["limit_measured"]
            continue
        p = plain.get((r["batch_size"], r["new_tokens"]))
        if p is None:
            r["ratio_to_plain"] = r["limit_measured"] = math.nan
            continue
        r["ratio_to_plain"] = r["ms_per_token"] / p["ms_per_token"]
        r["limit_measured"] = 1.0 + r["reward_ms"] / p["lm_ms"] if r["method"] != "plain" else 1.0
        r["ratio_over_limit"] = r["ratio_to_plain"] / r["limit_measured"]


def _relative(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Time of cell a over cell b; via each one's paired-plain ratio when present (cancels machine drift)."""
    if not math.isnan(a.get("plain_ms_paired", math.nan)) and not math.isnan(b.get("plain_ms_paired", math.nan)):
        return a["ratio_to_plain"] / b["ratio_to_plain"]
    return a["ms_per_token"] / b["ms_per_token"]


def ratio_report(rows: list[dict[str, Any]]) -> list[str]:
    """The target checks as text lines (a benchmark prints ratios; nothing here is a timed test)."""
    lines = []
    by = {(r["method"], r["batch_size"], r["new_tokens"], r["top_k"]): r for r in rows}
    arms = sorted({r["method"] for r in rows if r["method"].startswith("arm")})
    for (method, b, t, k), r in sorted(by.items()):
        if method in arms:
            x = r["ratio_to_plain"]
            ok_m = "OK" if x <= 1.15 * r["limit_measured"] else "MISS"
            ok_f = "OK" if x <= 1.15 * r["limit_flops"] else "MISS"
            lines.append(f"{method:12s} B={b:<3d} T={t:<4d} k={k:<3d} ratio/plain={x:.3f} | <= 1.15 x limit: "
                         f"measured {r['limit_measured']:.3f} {ok_m}, FLOPs {r['limit_flops']:.3f} {ok_f}")
    for (method, b, t, k), r in sorted(by.items()):
        if method == "rad" and ("rad-loop", b, t, k) in by:
            loop = by[("rad-loop", b, t, k)]
            speed = _relative(loop, r)
            scoring = loop["reward_ms"] / r["reward_ms"] if r["reward_ms"] > 0 else math.nan
            # The target is on the reward step, the only thing batching changes; the whole decoding step also
            # holds the base LM's forward, identical in both, which caps the step ratio at 1 + loop/LM time.
            tag = (" -> " + ("OK" if scoring >= 5 else "MISS") + " (>= 5x at k=20)") if k == 20 else ""
            lines.append(f"rad vs rad-loop B={b:<3d} T={t:<4d} k={k:<3d} loop/batched: reward-model time "
                         f"{scoring:.2f}x{tag}; whole step {speed:.2f}x")
    for (method, b, t, k), r in sorted(by.items()):
        if method == "rad":
            for arm in arms:
                a = by.get((arm, b, t, k))
                if a is not None:
                    lines.append(f"rad/{arm:12s} B={b:<3d} T={t:<4d} k={k:<3d} per-token ratio="
                                 f"{_relative(r, a):.2f}")
    return lines
