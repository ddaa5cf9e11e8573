"""Decoding latency of the code users run: plain vs. RAD (batched and per-candidate loop) vs. ARM variants.

The one timing tool of the package. Every cell times `model.generate` with the processors that
`generate_continuations` builds (the real `TopKRewardLogitsProcessor`, then `RowSeededSampler`) for `new_tokens`
steps from random prompt ids of one length (no padding, no EOS stop), with
`torch.utils.benchmark.Timer.adaptive_autorange`: it warms up, synchronises the accelerator around each clock
read and repeats until IQR/median < `spread_max` or `max_run_time` is spent. The time spent inside the processor
(top-k + reward scoring) is read with the same synchronised clock, so the reward step is measured, not inferred.

Plain decoding of the same batch is measured before the first cell and after every cell, so each cell sits
between two plain measurements: its ratio to plain uses their pooled median, and their disagreement (drift)
says the machine changed under it. `assess` calls a cell unstable when its spread, its plain bracket's spread
or drift, or the CPU share other processes took while it ran (psutil) passes a threshold; an unstable cell is
re-measured up to `retries` times, and a check on a cell that stays unstable prints UNSTABLE, never OK or MISS
(`verdict`): a loaded machine can give slow timings with a tight spread, which only the load shows.

Reward-model work is counted by the reward model's own `counting()` during one untimed decode per cell (which
is also the cell's warm-up). Latency does not depend on the weights, so untrained models are fine.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import LogitsProcessor, LogitsProcessorList

from bench.decoding.generate import sampling_config
from bench.decoding.processors import RowSeededSampler, TopKRewardLogitsProcessor, row_seed
from bench.errors import ConfigError
from bench.rewards.base import RewardConfig, RewardModel

log = logging.getLogger(__name__)

LOOP = "rad-loop"  # RAD scored one candidate at a time over the same KV cache: the reference batching is judged by
ARM_LIMIT_FACTOR = 1.15  # check: an ARM variant costs at most 1.15x its limit
LOOP_SPEEDUP = 5.0  # check: batched RAD's reward step is >= 5x faster than the loop ...
LOOP_SPEEDUP_K = 20  # ... at k = 20


def all_methods() -> list[str]:
    """ "plain" plus every registered parametrization and its latency variants (e.g. rad-loop)."""
    from bench.rewards.registry import latency_methods

    return ["plain", *latency_methods()]


@dataclass
class LatencyConfig:
    """One sweep. `reward_models` maps a parametrization to a trained folder; others are built untrained."""

    base: str = "embedded:smollm2-135m"
    reward: str = "embedded:smollm2-135m"  # reward trunk backbone spec
    reward_layers: int | None = 6
    methods: list[str] = field(default_factory=lambda: ["plain", "rad", LOOP, "arm", "arm-baseline", "arm-mlp"])
    top_k: list[int] = field(default_factory=lambda: [10, 20, 80])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8])
    new_tokens: list[int] = field(default_factory=lambda: [4])
    prompt_len: int = 16
    beta: float = 10.0
    mlp_rank: int = 16
    loop_max_k: int = 20  # rad-loop is k forwards per token: only run it up to this k
    dtype: str = "float32"
    device: str | None = None  # None: cuda if available else cpu
    seed: int = 0
    reward_models: dict[str, str] = field(default_factory=dict)
    min_run_time: float = 0.2  # seconds a measurement runs at least (Timer.adaptive_autorange)
    max_run_time: float = 1.0  # ... and at most, unless min_samples decodes need longer
    min_samples: int = 4
    spread_max: float = 0.10  # IQR / median of a measurement
    drift_max: float = 0.10  # |plain after a cell / plain before it - 1|
    load_max: float = 0.25  # share of all CPUs other processes used while a cell ran
    retries: int = 1  # re-measurements of an unstable cell

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in all_methods()]
        if bad:
            raise ConfigError(f"latency: unknown method(s) {bad}; expected a subset of {all_methods()}")
        for key in ("top_k", "batch_sizes", "new_tokens"):
            vals = getattr(self, key)
            if not vals or any(int(v) < 1 for v in vals):
                raise ConfigError(f"latency: '{key}' must be a non-empty list of positive integers, got {vals}")
        for key in ("min_run_time", "max_run_time", "spread_max", "drift_max", "load_max"):
            v = float(getattr(self, key))
            if not v > 0 or not math.isfinite(v):
                raise ConfigError(f"latency: '{key}' must be a positive number, got {v}")
        if self.min_samples < 2 or self.retries < 0:
            raise ConfigError(
                f"latency: need min_samples >= 2 and retries >= 0, got {self.min_samples}, {self.retries}"
            )

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.spread_max, self.drift_max, self.load_max, self.min_samples)


# ------------------------------------------------------------------------------------ stability (pure)
@dataclass(frozen=True)
class Thresholds:
    spread_max: float = 0.10
    drift_max: float = 0.10
    load_max: float = 0.25
    min_samples: int = 4


def spread(values: list[float]) -> dict[str, float]:
    """Median, quartiles (inclusive method), min and max of repeated measurements."""
    vals = sorted(values)
    if len(vals) == 1:
        q1 = q3 = vals[0]
    else:
        q = statistics.quantiles(vals, n=4, method="inclusive")
        q1, q3 = q[0], q[2]
    return {"median": statistics.median(vals), "q1": q1, "q3": q3, "min": vals[0], "max": vals[-1]}


def relative_iqr(values: list[float]) -> float:
    s = spread(values)
    return (s["q3"] - s["q1"]) / s["median"] if s["median"] > 0 else math.inf


def assess(
    samples: list[float],
    plain_before: list[float] | None,
    plain_after: list[float] | None,
    others_cpu: float,
    th: Thresholds,
) -> list[str]:
    """Why a cell's timing cannot be trusted (empty: it can). Samples are seconds per decode.

    Checked: enough samples; spread (IQR/median) of the cell and of each plain measurement next to it; drift of
    plain between before and after the cell; CPU share other processes took meanwhile (a loaded machine can
    be slow with a tight spread).
    """
    reasons = []
    if len(samples) < th.min_samples:
        reasons.append(f"{len(samples)} samples < {th.min_samples}")
    s = relative_iqr(samples)
    if s > th.spread_max:
        reasons.append(f"spread {s:.2f} > {th.spread_max:g}")
    for name, plain in (("before", plain_before), ("after", plain_after)):
        if plain and relative_iqr(plain) > th.spread_max:
            reasons.append(f"plain {name} spread {relative_iqr(plain):.2f} > {th.spread_max:g}")
    if plain_before and plain_after:
        drift = statistics.median(plain_after) / statistics.median(plain_before) - 1.0
        if abs(drift) > th.drift_max:
            reasons.append(f"plain drift {drift:+.2f} > {th.drift_max:g}")
    if not others_cpu <= th.load_max:  # NaN (unknown load) is not quiet either
        reasons.append(f"other processes used {others_cpu:.0%} of the CPUs > {th.load_max:.0%}")
    return reasons


def verdict(value: float, bound: float, reasons: list[str], at_least: bool = False) -> str:
    """OK / MISS of `value <= bound` (or `>=` with at_least); UNSTABLE when the timing behind it is not trusted."""
    if reasons or not (math.isfinite(value) and math.isfinite(bound)):
        return "UNSTABLE"
    return "OK" if (value >= bound if at_least else value <= bound) else "MISS"


# ------------------------------------------------------------------------------------ measuring
class LoadProbe:
    """The machine's load while a block ran: other processes' share of all CPUs (psutil) and the load average."""

    def __enter__(self) -> LoadProbe:
        import psutil

        self._psutil = psutil
        self._proc = psutil.Process()
        self._sys0, self._own0 = psutil.cpu_times(), self._proc.cpu_times()
        self._t0 = _clock()
        return self

    def __exit__(self, *exc) -> None:
        wall = _clock() - self._t0
        sys1, own1 = self._psutil.cpu_times(), self._proc.cpu_times()
        busy = _busy(sys1) - _busy(self._sys0)
        own = (own1.user + own1.system) - (self._own0.user + self._own0.system)
        self.cpus = self._psutil.cpu_count() or 1
        self.others_cpu = max(0.0, busy - own) / (wall * self.cpus) if wall > 0 else math.nan
        self.load1 = os.getloadavg()[0]


def _busy(t) -> float:
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))


def _clock() -> float:
    """torch.utils.benchmark's clock: synchronises the accelerator, then reads the wall clock."""
    from torch.utils.benchmark.utils.timer import timer

    return timer()


@dataclass
class Timing:
    times: list[float]  # seconds per call, one per Timer block
    others_cpu: float
    load1: float
    cpus: int

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def timed(
    fn: Callable[[], Any],
    *,
    min_run_time: float = 0.2,
    max_run_time: float = 1.0,
    spread_max: float = 0.10,
    min_samples: int = 4,
    expected_s: float | None = None,
    label: str = "",
) -> Timing:
    """Time `fn()` with `Timer.adaptive_autorange` (stops once IQR/median < spread_max) and the machine's load.

    The time limit stretches so that `min_samples` calls of about `expected_s` seconds fit.
    """
    from torch.utils.benchmark import Timer

    limit = max(max_run_time, (min_samples - 0.5) * (expected_s or 0.0))
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads(), label=label)
    with LoadProbe() as probe:
        m = timer.adaptive_autorange(threshold=spread_max, min_run_time=min_run_time, max_run_time=limit)
    return Timing(list(m.times), probe.others_cpu, probe.load1, probe.cpus)


class _Clocked(LogitsProcessor):
    """Runs the real processor and adds the (synchronised) time it took; generate calls it like any processor."""

    def __init__(self, inner: LogitsProcessor) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        t0 = _clock()
        out = self.inner(input_ids, scores)
        self.seconds += _clock() - t0
        self.calls += 1
        return out


class LoopScoring:
    """A RAD model seen through its per-candidate loop: `score_candidates` is `score_candidates_loop`.

    Everything else is the model's own, so the processor, its state and `counting()` are the ones users get.
    """

    def __init__(self, model: RewardModel) -> None:
        if not hasattr(model, "score_candidates_loop"):
            raise ConfigError(
                f"latency: method '{LOOP}' needs a RAD model (with score_candidates_loop), got {type(model).__name__}"
            )
        self._model = model

    def score_candidates(self, *args, **kwargs):
        return self._model.score_candidates_loop(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._model, name)


class Decoder:
    """One cell's decode: `model.generate` with the real processors for `new_tokens` steps, no EOS stop.

    Each call resets the sampler's row generators, so every repeat samples the same tokens (same work).
    """

    def __init__(
        self,
        lm: nn.Module,
        tokenizer,
        reward_model: RewardModel | LoopScoring | None,
        prompt: torch.Tensor,
        new_tokens: int,
        k: int,
        beta: float,
        seed: int,
    ) -> None:
        vocab = int(lm.get_input_embeddings().weight.shape[0])
        self.processor = TopKRewardLogitsProcessor(
            reward_model, k, beta if reward_model is not None else 0.0, "toward", vocab_size=vocab
        )
        self.clock = _Clocked(self.processor)
        self.sampler = RowSeededSampler([row_seed(seed, "latency", j) for j in range(prompt.shape[0])])
        self.config = sampling_config(tokenizer, 1, new_tokens)
        self.config.min_new_tokens, self.config.min_length = int(new_tokens), None  # every decode is T steps
        self.lm, self.prompt, self.new_tokens = lm, prompt, int(new_tokens)
        self.mask = torch.ones_like(prompt)
        self.processor_seconds: list[float] = []  # per decode
        self.peak_rss = 0

    @torch.no_grad()
    def __call__(self) -> None:
        self.processor.set_attention_mask(self.mask)
        self.sampler.reset()
        before = self.clock.seconds
        self.lm.generate(
            input_ids=self.prompt,
            attention_mask=self.mask,
            generation_config=self.config,
            logits_processor=LogitsProcessorList([self.clock, self.sampler]),
        )
        self.processor_seconds.append(self.clock.seconds - before)
        if self.prompt.device.type != "cuda":
            import psutil

            self.peak_rss = max(self.peak_rss, psutil.Process().memory_info().rss)


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

    return {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "dtype": cfg.dtype,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "timer": (
            f"torch.utils.benchmark.Timer.adaptive_autorange(threshold={cfg.spread_max:g}, "
            f"min_run_time={cfg.min_run_time:g}, max_run_time>={cfg.max_run_time:g})"
        ),
        "sync": "torch.accelerator.synchronize before each clock read" if device.type == "cuda" else "none (CPU)",
        "decode": "model.generate + TopKRewardLogitsProcessor + RowSeededSampler",
        "base": cfg.base,
        "reward": cfg.reward + (f" (first {cfg.reward_layers} layers)" if cfg.reward_layers else ""),
        "prompt_len": cfg.prompt_len,
    }


def build_models(cfg: LatencyConfig, device: torch.device) -> tuple[nn.Module, Any, dict[str, Any]]:
    """The base LM, its tokenizer and one reward model per method (rad-loop: the RAD model seen as a loop)."""
    from bench.models.loading import load_causal_lm, load_tokenizer
    from bench.rewards.registry import build_reward_model, get, latency_methods, load_reward_model

    lm = load_causal_lm(cfg.base, dtype=cfg.dtype, device=str(device))
    tok = load_tokenizer(cfg.base)
    built: dict[str, RewardModel] = {}
    models: dict[str, Any] = {}
    for method in cfg.methods:
        if method == "plain":
            continue
        param = latency_methods()[method]
        if param not in built:
            folder = cfg.reward_models.get(param)
            if folder:
                rm = load_reward_model(folder, device=str(device), expected_parametrization=param)
            else:
                rc = RewardConfig(
                    parametrization=param,
                    backbone=cfg.reward,
                    num_layers=cfg.reward_layers,
                    dtype=cfg.dtype,
                    mlp_rank=cfg.mlp_rank if get(param).mlp_rank else None,
                )
                rm = build_reward_model(rc, device=str(device))
            built[param] = rm.eval()
        models[method] = LoopScoring(built[param]) if method == LOOP else built[param]
    return lm, tok, models


def lm_step_params(lm: nn.Module) -> int:
    """Weights one base-LM step multiplies per position: the non-embedding weights + the V x d output projection."""
    emb = lm.get_input_embeddings().weight
    seen, n = {id(emb)}, 0
    for p in lm.base_model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n + emb.numel()


def flops_limit(lm_params: int, rm: RewardModel | LoopScoring | None, k: int) -> float:
    """1 + reward FLOPs / LM FLOPs per step (2 FLOPs per weight per position), from `step_cost(k)`."""
    if rm is None:
        return 1.0
    c = rm.step_cost(k)
    return 1.0 + (c["positions"] * c["trunk_params"] + c["extra_params"]) / lm_params


def run_sweep(
    cfg: LatencyConfig,
    lm: nn.Module | None = None,
    tokenizer=None,
    models: dict[str, Any] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Measure every (batch, new_tokens, method, k) cell; rows carry protocol, load, stability and ratios."""
    from bench.models.loading import resolve_device
    from bench.utils.progress import Progress

    device = resolve_device(cfg.device)
    if lm is None or models is None or tokenizer is None:
        lm, tokenizer, models = build_models(cfg, device)
    proto = protocol(cfg, device)
    lm_params = lm_step_params(lm)
    vocab = int(lm.get_input_embeddings().weight.shape[0])
    rows: list[dict[str, Any]] = []
    groups = [(b, t) for b in cfg.batch_sizes for t in cfg.new_tokens]
    cells = [(m, k) for m in cfg.methods if m != "plain" for k in cfg.top_k if not (m == LOOP and k > cfg.loop_max_k)]
    bar = Progress(len(groups) * (1 + len(cells)), "latency", "cells", logger=log, enabled=progress)
    for b, t in groups:
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        prompt = torch.randint(0, vocab, (b, cfg.prompt_len), generator=gen).to(device)
        plain = Decoder(lm, tokenizer, None, prompt, t, max(cfg.top_k), 0.0, cfg.seed)
        t0 = _clock()
        plain()  # warm-up (the first generate of a process is slow)
        first_s = _clock() - t0
        bar.set_postfix(cell=f"plain B={b} T={t}")
        before = _measure(plain, cfg, first_s)
        if "plain" in cfg.methods:
            reasons = assess(before[0].times, None, None, before[0].others_cpu, cfg.thresholds)
            rows.append(_row("plain", b, t, 0, before, before, None, reasons, 1, {}, 0, 1.0, _peak(device, plain)))
        bar.update(1)
        for method, k in cells:
            bar.set_postfix(cell=f"{method} B={b} T={t} k={k}")
            rm = models[method]
            dec = Decoder(lm, tokenizer, rm, prompt, t, k, cfg.beta, cfg.seed)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            calls0 = dec.clock.calls
            try:
                with rm.counting() as counter:  # the untimed warm-up decode, counted
                    t0 = _clock()
                    dec()
                    first_s = _clock() - t0
            except torch.OutOfMemoryError:
                log.warning("latency: %s B=%d T=%d k=%d does not fit in memory; skipped", method, b, t, k)
                del dec
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                bar.update(1)
                continue
            counts = {
                "trunk_forwards": counter.trunk_forwards,
                "trunk_positions": counter.trunk_positions,
                "head_rows": counter.head_rows,
            }
            steps = dec.clock.calls - calls0
            for attempt in range(1, cfg.retries + 2):
                cell = _measure(dec, cfg, first_s)
                after = _measure(plain, cfg, before[0].median)
                others = max(cell[0].others_cpu, after[0].others_cpu)
                reasons = assess(cell[0].times, before[0].times, after[0].times, others, cfg.thresholds)
                paired = before
                before = after  # the next cell's plain-before
                if not reasons:
                    break
                log.info(
                    "latency: %s B=%d T=%d k=%d unstable (%s)%s",
                    method,
                    b,
                    t,
                    k,
                    "; ".join(reasons),
                    "; re-measuring" if attempt <= cfg.retries else "",
                )
            rows.append(
                _row(
                    method,
                    b,
                    t,
                    k,
                    cell,
                    paired,
                    after,
                    reasons,
                    attempt,
                    counts,
                    steps,
                    flops_limit(lm_params, rm, k),
                    _peak(device, dec),
                )
            )
            bar.update(1)
    bar.close()
    for r in rows:
        r.update(proto)
    return rows


def _measure(dec: Decoder, cfg: LatencyConfig, expected_s: float | None) -> tuple[Timing, float]:
    """A Timer measurement of `dec` and the median time per decode spent inside the processor."""
    n0 = len(dec.processor_seconds)
    timing = timed(
        dec,
        min_run_time=cfg.min_run_time,
        max_run_time=cfg.max_run_time,
        spread_max=cfg.spread_max,
        min_samples=cfg.min_samples,
        expected_s=expected_s,
    )
    return timing, statistics.median(dec.processor_seconds[n0:])


def _peak(device: torch.device, dec: Decoder) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device), "cuda max_memory_allocated"
    return dec.peak_rss, "process RSS (psutil)"


def _row(method, b, t, k, cell, before, after, reasons, attempts, counts, steps, limit_flops, peak) -> dict[str, Any]:
    timing, proc_s = cell
    s = {key: 1e3 * v / t for key, v in spread(timing.times).items()}  # ms per token
    plain_times = before[0].times + (after[0].times if after is not None else [])
    plain_ms = 1e3 * statistics.median(plain_times) / t
    plain_proc_ms = 1e3 * statistics.median([before[1]] + ([after[1]] if after is not None else [])) / t
    proc_ms = 1e3 * proc_s / t
    reward_ms = proc_ms - plain_proc_ms if method != "plain" else 0.0
    drift = (after[0].median / before[0].median - 1.0) if after is not None else 0.0
    row = {
        "method": method,
        "batch_size": b,
        "new_tokens": t,
        "top_k": k,
        "ms_per_token": s["median"],
        "ms_q1": s["q1"],
        "ms_q3": s["q3"],
        "ms_min": s["min"],
        "ms_max": s["max"],
        "samples": len(timing.times),
        "tokens_per_s": 1e3 * b / s["median"],
        "processor_ms": proc_ms,
        "reward_ms": reward_ms,
        "reward_share": reward_ms / s["median"],
        "trunk_forwards_per_token": counts.get("trunk_forwards", 0) / steps if steps else 0.0,
        "trunk_positions_per_token": counts.get("trunk_positions", 0) / steps if steps else 0.0,
        "reward_calls_per_token": counts.get("head_rows", 0) / steps if steps else 0.0,
        "peak_mem_mb": peak[0] / 2**20,
        "peak_mem_kind": peak[1],
        "plain_ms_paired": plain_ms,
        "plain_drift": drift,
        "ratio_to_plain": s["median"] / plain_ms,
        "limit_measured": 1.0 + reward_ms / plain_ms,
        "limit_flops": limit_flops,
        "spread": relative_iqr(timing.times),
        "stable": not reasons,
        "unstable_reasons": "; ".join(reasons),
        "attempts": attempts,
        "others_cpu": max(timing.others_cpu, after[0].others_cpu) if after is not None else timing.others_cpu,
        "load1": timing.load1,
        "cpus": timing.cpus,
    }
    row["ratio_over_limit"] = row["ratio_to_plain"] / row["limit_measured"]
    return row


# ------------------------------------------------------------------------------------ the checks
def _relative(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Time of cell a over cell b via each one's paired-plain ratio (cancels machine drift between them)."""
    return a["ratio_to_plain"] / b["ratio_to_plain"]


def _reasons(*rows: dict[str, Any]) -> list[str]:
    return [f"{r['method']} k={r['top_k']}: {r['unstable_reasons']}" for r in rows if not r["stable"]]


def _tag(status: str, reasons: list[str]) -> str:
    return status + (f" ({'; '.join(reasons)})" if status == "UNSTABLE" else "")


def ratio_report(rows: list[dict[str, Any]]) -> list[str]:
    """The target checks as text lines (a benchmark prints ratios; nothing here is a timed test)."""
    lines = []
    by = {(r["method"], r["batch_size"], r["new_tokens"], r["top_k"]): r for r in rows}
    arms = sorted({r["method"] for r in rows if r["method"].startswith("arm")})
    for (method, b, t, k), r in sorted(by.items()):
        if method in arms:
            x, why = r["ratio_to_plain"], _reasons(r)
            ok_m = verdict(x, ARM_LIMIT_FACTOR * r["limit_measured"], why)
            ok_f = verdict(x, ARM_LIMIT_FACTOR * r["limit_flops"], why)
            lines.append(
                f"{method:12s} B={b:<3d} T={t:<4d} k={k:<3d} ratio/plain={x:.3f} | <= {ARM_LIMIT_FACTOR}"
                f" x limit: measured {r['limit_measured']:.3f} {ok_m}, FLOPs {r['limit_flops']:.3f} "
                f"{_tag(ok_f, why)}"
            )
    for (method, b, t, k), r in sorted(by.items()):
        if method == "rad" and (LOOP, b, t, k) in by:
            loop = by[(LOOP, b, t, k)]
            scoring = loop["reward_ms"] / r["reward_ms"] if r["reward_ms"] > 0 else math.nan
            # The target is on the reward step, the only thing batching changes; the whole decoding step also
            # holds the base LM's forward, identical in both, which caps the step ratio at 1 + loop/LM time.
            tag = ""
            if k == LOOP_SPEEDUP_K:
                why = _reasons(r, loop)
                tag = f" -> {_tag(verdict(scoring, LOOP_SPEEDUP, why, at_least=True), why)} (>= {LOOP_SPEEDUP:g}x)"
            lines.append(
                f"rad vs rad-loop B={b:<3d} T={t:<4d} k={k:<3d} loop/batched: reward-model time "
                f"{scoring:.2f}x{tag}; whole step {_relative(loop, r):.2f}x"
            )
    for (method, b, t, k), r in sorted(by.items()):
        if method == "rad":
            for arm in arms:
                a = by.get((arm, b, t, k))
                if a is not None:
                    note = " (unstable)" if _reasons(r, a) else ""
                    lines.append(
                        f"rad/{arm:12s} B={b:<3d} T={t:<4d} k={k:<3d} per-token ratio={_relative(r, a):.2f}{note}"
                    )
    unstable = [r for r in rows if not r["stable"]]
    if rows:
        r0 = rows[0]
        lines.append(
            f"machine: {r0['cpus']} CPUs, load average {max(r['load1'] for r in rows):.2f} (max), other "
            f"processes up to {max(r['others_cpu'] for r in rows):.0%} of the CPUs; "
            f"{len(unstable)}/{len(rows)} cells unstable"
        )
    return lines
