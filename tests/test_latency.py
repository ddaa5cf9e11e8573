"""Latency harness: it times the real processor inside `model.generate`, counts reward-model work through the
reward model's own `counting()` (RAD k head rows per token, ARM 1), and a noisy cell's checks read UNSTABLE."""

from __future__ import annotations

import csv

import pytest
import torch

from bench.analysis import latency as lat
from bench.decoding.processors import TopKRewardLogitsProcessor
from tests.conftest import TINY_GPT2

PROMPT_LEN, T, B = 6, 3, 2
QUICK = dict(min_run_time=0.01, max_run_time=0.05, retries=0)


def _cfg(**kw):
    base = dict(
        base=TINY_GPT2,
        reward=TINY_GPT2,
        reward_layers=None,
        top_k=[3, 5],
        batch_sizes=[B],
        new_tokens=[T],
        prompt_len=PROMPT_LEN,
        mlp_rank=4,
        device="cpu",
        **QUICK,
    )
    base.update(kw)
    return lat.LatencyConfig(**base)


@pytest.fixture(scope="module")
def rows():
    return lat.run_sweep(_cfg(methods=["plain", "rad", "rad-loop", "arm", "arm-mlp"]), progress=False)


def _row(rows, method, k):
    (r,) = [r for r in rows if r["method"] == method and r["top_k"] == k]
    return r


@pytest.mark.parametrize("k", [3, 5])
def test_counts_rad_k_candidates_per_token(rows, k):
    r = _row(rows, "rad", k)
    assert r["reward_calls_per_token"] == k  # head rows per batch row per step
    assert r["trunk_forwards_per_token"] == 1  # one batched forward over the cache
    # step 1 reads the reward model's BOS + the prompt + k candidates; later steps 1 new token + k candidates
    assert r["trunk_positions_per_token"] == pytest.approx((1 + PROMPT_LEN + (T - 1) + T * k) / T)


@pytest.mark.parametrize("k", [3, 5])
def test_counts_rad_loop_and_arm(rows, k):
    loop = _row(rows, "rad-loop", k)
    assert loop["reward_calls_per_token"] == k
    assert loop["trunk_forwards_per_token"] == k + 1  # the prefix extension + one forward per candidate
    for method in ("arm", "arm-mlp"):
        r = _row(rows, method, k)
        assert r["reward_calls_per_token"] == 1
        assert r["trunk_forwards_per_token"] == 1
        assert r["trunk_positions_per_token"] == pytest.approx((1 + PROMPT_LEN + T - 1) / T)


def test_rows_ratios_and_protocol(rows):
    (plain,) = [r for r in rows if r["method"] == "plain"]
    assert plain["reward_calls_per_token"] == 0 and plain["ratio_to_plain"] == 1.0 and plain["top_k"] == 0
    for r in rows:
        assert r["ratio_to_plain"] == pytest.approx(r["ms_per_token"] / r["plain_ms_paired"])
        assert r["limit_measured"] == pytest.approx(1 + r["reward_ms"] / r["plain_ms_paired"])
        assert r["ms_min"] <= r["ms_q1"] <= r["ms_per_token"] <= r["ms_q3"] <= r["ms_max"]
        assert r["tokens_per_s"] == pytest.approx(1e3 * B / r["ms_per_token"])
        assert r["samples"] >= 1 and r["attempts"] == 1
        assert r["stable"] == (r["unstable_reasons"] == "")
        assert r["device"] == "cpu" and r["torch"] == torch.__version__ and "adaptive_autorange" in r["timer"]
        assert r["cpus"] >= 1 and r["load1"] >= 0 and r["others_cpu"] >= 0
        assert r["peak_mem_mb"] > 0 and r["peak_mem_kind"].startswith("process RSS")
    rad3 = _row(rows, "rad", 3)
    assert rad3["limit_flops"] > _row(rows, "arm", 3)["limit_flops"] > 1.0
    assert _row(rows, "rad", 5)["limit_flops"] > rad3["limit_flops"]
    assert _row(rows, "rad-loop", 3)["limit_flops"] == rad3["limit_flops"]  # same positions, k+1 calls
    text = "\n".join(lat.ratio_report(rows))
    assert "rad vs rad-loop" in text and "arm " in text and "rad/arm" in text and "CPUs" in text


def test_the_timed_processor_is_the_real_one():
    """A Decoder runs `generate` through the TopKRewardLogitsProcessor users get: its own counter moves."""
    cfg = _cfg(methods=["rad", "rad-loop"])
    lm, tok, models = lat.build_models(cfg, torch.device("cpu"))
    prompt = torch.randint(0, 100, (B, PROMPT_LEN), generator=torch.Generator().manual_seed(0))
    for method in ("rad", "rad-loop"):
        dec = lat.Decoder(lm, tok, models[method], prompt, T, 4, beta=10.0, seed=0)
        assert type(dec.processor) is TopKRewardLogitsProcessor
        dec()
        dec()
        assert dec.clock.calls == 2 * T  # one processor call per generated token
        assert dec.processor.reward_calls == 2 * T * 4  # RAD: k reward evaluations per token, loop or not
        assert len(dec.processor_seconds) == 2 and all(s > 0 for s in dec.processor_seconds)


def test_sweep_calls_the_processor_class(monkeypatch):
    seen = []
    real = TopKRewardLogitsProcessor.__call__

    def spy(self, input_ids, scores):
        seen.append((type(self.reward_model).__name__ if self.reward_model is not None else None, self.top_k))
        return real(self, input_ids, scores)

    monkeypatch.setattr(TopKRewardLogitsProcessor, "__call__", spy)
    lat.run_sweep(_cfg(methods=["plain", "rad", "rad-loop", "arm"], top_k=[2]), progress=False)
    assert {s for s in seen} == {(None, 2), ("RADRewardModel", 2), ("LoopScoring", 2), ("ARMRewardModel", 2)}


# ---------------------------------------------------------------------------------- stability, by hand
TH = lat.Thresholds(spread_max=0.10, drift_max=0.10, load_max=0.25, min_samples=4)
FLAT = [1.0, 1.0, 1.0, 1.0]


def test_quiet_cell_checks_ok_or_miss():
    assert lat.assess(FLAT, [2.0] * 4, [2.05] * 4, 0.05, TH) == []  # drift 2.5 %, spread 0, load 5 %
    assert lat.verdict(1.10, 1.15 * 1.0, []) == "OK"
    assert lat.verdict(1.30, 1.15 * 1.0, []) == "MISS"
    assert lat.verdict(6.0, 5.0, [], at_least=True) == "OK"
    assert lat.verdict(3.0, 5.0, [], at_least=True) == "MISS"


def test_spread_quartiles_and_unstable_spread():
    s = lat.spread([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s["median"], s["q1"], s["q3"], s["min"], s["max"]) == (3.0, 2.0, 4.0, 1.0, 5.0)
    assert lat.relative_iqr([5.0, 1.0, 3.0, 2.0, 4.0]) == pytest.approx(2.0 / 3.0)
    assert lat.assess([1.0, 2.0, 3.0, 4.0, 5.0], FLAT, FLAT, 0.0, TH) == ["spread 0.67 > 0.1"]
    # the plain bracket's own spread counts too
    assert lat.assess(FLAT, [2.0, 2.5, 3.0, 3.5, 4.0], [3.0] * 4, 0.0, TH) == ["plain before spread 0.33 > 0.1"]


def test_unstable_drift_samples_and_load():
    assert lat.assess(FLAT, [1.0] * 4, [1.25] * 4, 0.0, TH) == ["plain drift +0.25 > 0.1"]
    assert lat.assess(FLAT, [1.0] * 4, [0.8] * 4, 0.0, TH) == ["plain drift -0.20 > 0.1"]
    assert lat.assess([1.0, 1.0], None, None, 0.0, TH) == ["2 samples < 4"]
    assert lat.assess(FLAT, None, None, 0.5, TH) == ["other processes used 50% of the CPUs > 25%"]
    assert lat.assess(FLAT, None, None, float("nan"), TH) != []  # unknown load is not quiet


def test_loaded_machine_with_tight_spread_is_unstable():
    """The observed case: plain at 1,529 ms/token (45 when quiet) with a tight IQR and a steady bracket."""
    slow = [1.529, 1.530, 1.528, 1.531]
    reasons = lat.assess(slow, slow, slow, 0.85, TH)
    assert reasons == ["other processes used 85% of the CPUs > 25%"]
    assert lat.verdict(1.02, 1.15, reasons) == "UNSTABLE"
    assert lat.verdict(9.0, 5.0, reasons, at_least=True) == "UNSTABLE"


def _synthetic(method, k, ratio, reward_ms, reasons=""):
    return {
        "method": method,
        "batch_size": 1,
        "new_tokens": 4,
        "top_k": k,
        "ratio_to_plain": ratio,
        "limit_measured": 1.05,
        "limit_flops": 1.04,
        "reward_ms": reward_ms,
        "stable": not reasons,
        "unstable_reasons": reasons,
        "load1": 0.5,
        "others_cpu": 0.0,
        "cpus": 2,
    }


def test_report_prints_unstable_instead_of_ok_or_miss():
    rows = [
        _synthetic("rad", 20, 3.0, 10.0),
        _synthetic("rad-loop", 20, 20.0, 80.0),
        _synthetic("arm", 20, 1.02, 1.0),
        _synthetic("arm-mlp", 20, 1.02, 1.0, "plain drift +0.30 > 0.1"),
    ]
    lines = lat.ratio_report(rows)
    (arm,) = [x for x in lines if x.startswith("arm ")]
    (mlp,) = [x for x in lines if x.startswith("arm-mlp")]
    (loop,) = [x for x in lines if x.startswith("rad vs rad-loop")]
    assert "OK" in arm and "UNSTABLE" not in arm
    assert "UNSTABLE" in mlp and " OK" not in mlp and "MISS" not in mlp and "plain drift" in mlp
    assert "8.00x -> OK" in loop  # 80 / 10
    rows[1]["stable"], rows[1]["unstable_reasons"] = False, "spread 0.40 > 0.1"
    (loop,) = [x for x in lat.ratio_report(rows) if x.startswith("rad vs rad-loop")]
    assert "UNSTABLE" in loop and "OK" not in loop
    assert lat.ratio_report(rows)[-1].endswith("2/4 cells unstable")


def test_bad_config_is_a_config_error():
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown method"):
        lat.LatencyConfig(methods=["plain", "rad-fast"])
    with pytest.raises(ConfigError, match="spread_max"):
        lat.LatencyConfig(spread_max=0.0)


def test_latency_command_writes_table_and_figure(tmp_path, capsys):
    from bench.cli import main

    out = tmp_path / "t"
    rc = main(
        [
            "latency",
            "--base",
            TINY_GPT2,
            "--reward",
            TINY_GPT2,
            "--reward-layers",
            "1",
            "--methods",
            "plain,rad,arm",
            "--top-k",
            "2,4",
            "--batch-sizes",
            "1",
            "--new-tokens",
            "2",
            "--prompt-len",
            "4",
            "--min-run-time",
            "0.01",
            "--max-run-time",
            "0.05",
            "--retries",
            "0",
            "--device",
            "cpu",
            "--out-csv",
            str(out / "latency.csv"),
            "--out-md",
            str(out / "latency.md"),
            "--figure",
            str(out / "latency.png"),
        ]
    )
    assert rc == 0
    rows = list(csv.DictReader(open(out / "latency.csv")))
    assert [(r["method"], r["top_k"]) for r in rows] == [
        ("plain", "0"),
        ("rad", "2"),
        ("rad", "4"),
        ("arm", "2"),
        ("arm", "4"),
    ]
    assert rows[1]["reward_calls_per_token"] == "2" and rows[3]["reward_calls_per_token"] == "1"
    assert {"stable", "unstable_reasons", "others_cpu", "load1", "cpus", "plain_drift"} <= set(rows[0])
    md = (out / "latency.md").read_text()
    assert "Protocol: device=cpu" in md and "adaptive_autorange" in md and "## Checks" in md
    assert (out / "latency.png").stat().st_size > 1000
    assert "rad/arm" in capsys.readouterr().out
