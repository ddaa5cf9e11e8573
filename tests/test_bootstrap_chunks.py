"""The chunked bootstrap gives the one-shot numbers bit for bit, whatever the chunk size.

The reference is the straightforward formula (HEAD before chunking): one `[n_boot, n]` draw, one
`[S, n_boot, n]` gather, sums over prompts. Equality is exact (`array_equal` on the float64 bits, NaNs in place).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.metrics import aggregate
from bench.metrics.aggregate import resample_ratios
from bench.metrics.comparisons import RunScores, matched_fluency, paired_differences


def reference_resample(num, den, n_boot, seed):
    num, den = np.atleast_2d(num).astype(np.float64), np.atleast_2d(den).astype(np.float64)
    idx = np.random.default_rng(seed).integers(0, num.shape[1], size=(n_boot, num.shape[1]))
    n, d = num[:, idx].sum(axis=-1), den[:, idx].sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d > 0, n / np.where(d > 0, d, 1.0), np.nan).T


def same_bits(a, b) -> bool:
    a, b = np.ascontiguousarray(a, np.float64), np.ascontiguousarray(b, np.float64)
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


def _data(rng, s, n):
    num = rng.lognormal(1.0, 2.0, size=(s, n)) * rng.integers(0, 4, size=(s, n))  # zeros, wide magnitudes
    den = rng.integers(0, 3, size=(s, n)).astype(float)
    num[den == 0] = 0.0
    den[:, :1] = 0.0  # a prompt undefined everywhere
    return num, den


@pytest.mark.parametrize("n", [1, 2, 7, 129, 1000])
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 10_000, None])
def test_chunked_resample_is_the_one_shot_draw(n, chunk):
    num, den = _data(np.random.default_rng(n), 5, n)
    ref = reference_resample(num, den, 37, seed=11)
    got = resample_ratios(num, den, 37, seed=11, chunk=chunk)
    assert same_bits(got, ref)
    if n == 1:
        assert np.isnan(got).all()  # the only prompt has den 0: every replicate undefined, not 0
    else:
        assert np.isfinite(got).any()


def test_one_setting_and_tiny_byte_budget(monkeypatch):
    num, den = _data(np.random.default_rng(0), 1, 300)
    ref = reference_resample(num[0], den[0], 50, seed=3)
    monkeypatch.setattr(aggregate, "BOOT_CHUNK_BYTES", 1)  # one replicate per chunk
    assert same_bits(resample_ratios(num[0], den[0], 50, seed=3), ref)
    assert not same_bits(resample_ratios(num[0], den[0], 50, seed=4), ref)  # the check can fail


def _runs(rng, n_runs, n_prompts, n_samples):
    ids = [f"p{i}" for i in range(n_prompts)]
    runs = []
    for r in range(n_runs):
        tox = rng.uniform(0, 1, size=(n_prompts, n_samples)) ** (1 + r / 3)
        ppl = np.exp(rng.normal(2.5 + 0.3 * r, 0.7, size=(n_prompts, n_samples)))
        tox[rng.uniform(size=tox.shape) < 0.05] = math.nan
        runs.append(RunScores(f"run{r}", ids, {"toxicity": tox.tolist(), "ppl": ppl.tolist()}))
    return runs


@pytest.mark.parametrize("budget", [1, 8 * 10 * 40 * 3, 8 * 10 * 40 * 1000])
def test_paired_and_matched_fluency_unchanged_by_chunking(monkeypatch, budget):
    """Whole comparisons at 1, 3 (6 for the 5 paired rows) and all replicates per chunk equal the one-shot
    reference (matched fluency resamples 10 rows of 40 prompts)."""
    from bench.metrics import comparisons

    keys = [{"method": "plain", "beta": 0.0}] + [{"method": m, "beta": b} for m in ("rad", "arm") for b in (1, 5)]
    runs = _runs(np.random.default_rng(7), len(keys), 40, 4)
    monkeypatch.setattr(comparisons, "resample_ratios", reference_resample)
    ref_p = paired_differences(keys, runs, 200, 5)
    ref_m = matched_fluency(keys, runs, [1.1, 1.5, 3.0], 200, 5)
    monkeypatch.setattr(comparisons, "resample_ratios", resample_ratios)
    monkeypatch.setattr(aggregate, "BOOT_CHUNK_BYTES", budget)
    got_p = paired_differences(keys, runs, 200, 5)
    got_m = matched_fluency(keys, runs, [1.1, 1.5, 3.0], 200, 5)
    assert got_p and got_m
    assert any(math.isfinite(r["value_lo"]) for r in got_m)
    for ref, got in ((ref_p, got_p), (ref_m, got_m)):
        assert [list(r) for r in ref] == [list(r) for r in got]
        for a, b in zip(ref, got):
            for k, v in a.items():
                assert (v == b[k]) or (isinstance(v, float) and math.isnan(v) and math.isnan(b[k])), k


def test_memory_does_not_grow_with_n_boot(monkeypatch):
    """tracemalloc peak of the bootstrap at 20 and 400 replicates: the same chunk-sized working set."""
    import tracemalloc

    num, den = _data(np.random.default_rng(1), 8, 2000)
    budget = 8 * 8 * 2000 * 10  # 10 replicates per chunk
    monkeypatch.setattr(aggregate, "BOOT_CHUNK_BYTES", budget)
    peaks = []
    for n_boot in (20, 400):
        tracemalloc.start()
        resample_ratios(num, den, n_boot, 0)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    one_shot = 8 * 8 * 400 * 2000  # bytes of HEAD's [S, n_boot, n] gather of num alone at 400 replicates
    assert peaks[1] < peaks[0] + 8 * 8 * 400 + 4096  # only the [S, n_boot] output grows
    assert peaks[1] < 2.5 * budget < one_shot / 8  # num's and den's chunk gathers (+ the draw)
