"""Latency harness: reward-model work is counted by hooks (RAD k per token, ARM 1), ratios and protocol are written."""

from __future__ import annotations

import csv

import pytest
import torch

from bench.analysis import latency as lat
from tests.conftest import TINY_GPT2

PROMPT_LEN, T = 6, 3


@pytest.fixture(scope="module")
def rows():
    cfg = lat.LatencyConfig(base=TINY_GPT2, reward=TINY_GPT2, reward_layers=None,
                            methods=["plain", "rad", "rad-loop", "arm", "arm-mlp"], top_k=[3, 5], batch_sizes=[2],
                            new_tokens=[T], prompt_len=PROMPT_LEN, warmup=0, repeats=2, mlp_rank=4, device="cpu")
    return lat.run_sweep(cfg, progress=False)


def _row(rows, method, k):
    (r,) = [r for r in rows if r["method"] == method and r["top_k"] == k]
    return r


@pytest.mark.parametrize("k", [3, 5])
def test_counts_rad_k_candidates_per_token(rows, k):
    r = _row(rows, "rad", k)
    assert r["reward_calls_per_token"] == k  # head rows per batch row per step
    assert r["trunk_forwards_per_token"] == 1  # one batched forward over the cache
    # step 1 reads BOS + the prompt + k candidates; later steps 1 new token + k candidates
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
        assert r["trunk_positions_per_token"] == pytest.approx((1 + PROMPT_LEN + T - 1) / T)  # BOS + prompt


def test_plain_row_and_ratios(rows):
    (plain,) = [r for r in rows if r["method"] == "plain"]
    assert plain["reward_calls_per_token"] == 0 and plain["ratio_to_plain"] == 1.0
    for r in rows:
        ref = plain["ms_per_token"] if r is plain else r["plain_ms_paired"]  # plain re-timed alongside each cell
        assert r["ratio_to_plain"] == pytest.approx(r["ms_per_token"] / ref)
        if r is not plain:
            assert r["limit_measured"] == pytest.approx(1 + r["reward_ms"] / r["plain_lm_ms_paired"])
        assert r["ms_min"] <= r["ms_q1"] <= r["ms_per_token"] <= r["ms_q3"] <= r["ms_max"]
        assert r["tokens_per_s"] == pytest.approx(1e3 * 2 / r["ms_per_token"])
        assert 0 <= r["reward_share"] <= 1
        assert r["device"] == "cpu" and r["repeats"] == 2 and r["warmup"] == 0 and r["torch"] == torch.__version__
        assert r["peak_mem_mb"] > 0 and r["peak_mem_kind"].startswith("process RSS")
    rad3 = _row(rows, "rad", 3)
    assert rad3["limit_flops"] > _row(rows, "arm", 3)["limit_flops"] > 1.0
    assert _row(rows, "rad", 5)["limit_flops"] > rad3["limit_flops"]
    text = "\n".join(lat.ratio_report(rows))
    assert "rad vs rad-loop" in text and "arm " in text and "rad/arm" in text


def test_spread_quartiles():
    s = lat.spread([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s["median"], s["q1"], s["q3"], s["min"], s["max"]) == (3.0, 2.0, 4.0, 1.0, 5.0)
    assert lat.spread([7.0])["q3"] == 7.0


def test_unknown_method_is_a_config_error():
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown method"):
        lat.LatencyConfig(methods=["plain", "rad-fast"])


def test_latency_command_writes_table_and_figure(tmp_path, capsys):
    from bench.cli import main

    out = tmp_path / "t"
    rc = main(["latency", "--base", TINY_GPT2, "--reward", TINY_GPT2, "--reward-layers", "1", "--methods",
               "plain,rad,arm", "--top-k", "2,4", "--batch-sizes", "1", "--new-tokens", "2", "--prompt-len", "4",
               "--warmup", "0", "--repeats", "1", "--device", "cpu", "--out-csv", str(out / "latency.csv"),
               "--out-md", str(out / "latency.md"), "--figure", str(out / "latency.png")])
    assert rc == 0
    rows = list(csv.DictReader(open(out / "latency.csv")))
    assert [(r["method"], r["top_k"]) for r in rows] == [("plain", "0"), ("rad", "2"), ("rad", "4"), ("arm", "2"),
                                                         ("arm", "4")]
    assert rows[1]["reward_calls_per_token"] == "2" and rows[3]["reward_calls_per_token"] == "1"
    md = (out / "latency.md").read_text()
    assert "Protocol: device=cpu" in md and "repeats=1" in md and "## Ratios" in md
    assert (out / "latency.png").stat().st_size > 1000
    assert "rad/arm" in capsys.readouterr().out
