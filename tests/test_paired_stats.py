"""Paired / joint bootstrap statistics and matched-fluency interpolation on hand-made runs (hand-computed values)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.errors import DataError
from bench.metrics.aggregate import bootstrap_ratio, paired_difference, percentile_ci, prompt_ratios, resample_ratios
from bench.metrics.comparisons import RunScores, interpolate_sweep, matched_fluency, paired_differences, read_scores

TOX = [[0.9, 0.1], [0.2, 0.3], [0.6, 0.05], [0.1, 0.0], [0.8, 0.7], [0.3, 0.4]]


def _run(name: str, tox=None, ppl=None, positive=None) -> RunScores:
    scores = {k: v for k, v in (("toxicity", tox), ("ppl", ppl), ("positive", positive)) if v is not None}
    n = len(next(iter(scores.values())))
    return RunScores(name, [f"p{i}" for i in range(n)], scores)


def test_identical_settings_paired_difference_is_exactly_zero_unpaired_is_wide():
    num, den = prompt_ratios("avg_max_toxicity", TOX)
    assert num.tolist() == [0.9, 0.3, 0.6, 0.1, 0.8, 0.4] and den.tolist() == [1.0] * 6
    both_num, both_den = np.stack([num, num]), np.stack([den, den])
    paired = paired_difference(both_num, both_den, n_boot=500, seed=0)
    assert (paired.value, paired.lo, paired.hi) == (0.0, 0.0, 0.0)
    # unpaired: the two settings resampled independently -> a wide interval around 0
    a = resample_ratios(num, den, 500, seed=0)[:, 0]
    b = resample_ratios(num, den, 500, seed=1)[:, 0]
    lo, hi = percentile_ci(a - b)
    assert lo < -0.15 and hi > 0.15


def test_paired_replicates_are_each_settings_own_bootstrap():
    """Invariance: resampling settings jointly leaves each setting's marginal bootstrap unchanged (same seed),
    and a per-prompt shift by c gives a paired difference of c with a zero-width CI."""
    num, den = prompt_ratios("avg_max_toxicity", TOX)
    other = np.array([0.5, 0.1, 0.9, 0.0, 0.2, 0.7])
    joint = resample_ratios(np.stack([num, other]), np.stack([den, den]), 300, seed=7)
    assert np.array_equal(joint[:, 0], resample_ratios(num, den, 300, seed=7)[:, 0])
    assert np.array_equal(joint[:, 1], resample_ratios(other, den, 300, seed=7)[:, 0])
    single = bootstrap_ratio(num, den, 300, seed=7)
    assert (single.lo, single.hi) == percentile_ci(joint[:, 0])
    shifted = paired_difference(np.stack([num + 0.25, num]), np.stack([den, den]), 300, seed=7)
    assert (
        shifted.value == pytest.approx(0.25) and shifted.lo == pytest.approx(0.25) and shifted.hi == pytest.approx(0.25)
    )


def test_ratio_statistics_per_prompt():
    ppl = [[10.0, 30.0, 2e5], [float("nan")], [5.0]]
    num, den = prompt_ratios("ppl", ppl)
    assert num.tolist() == [40.0, 0.0, 5.0] and den.tolist() == [2.0, 0.0, 1.0]  # 2e5 dropped, NaN-only prompt 0/0
    num, den = prompt_ratios("ppl_gmean", ppl)  # sums of log PPL over the same kept texts
    assert num == pytest.approx([math.log(300.0), 0.0, math.log(5.0)]) and den.tolist() == [2.0, 0.0, 1.0]
    num, den = prompt_ratios("toxic_rate", [[0.5, 0.1], [float("nan")], [0.49]])
    assert num.tolist() == [1.0, 0.0, 0.0] and den.tolist() == [1.0, 0.0, 1.0]
    num, den = prompt_ratios("positive_rate", [[0.9, 0.1, 0.6, 0.2]])
    assert num.tolist() == [0.5]


def test_paired_differences_to_plain_and_rad():
    plain = _run("plain", tox=[[0.5]] * 4 + [[0.3]] * 2, ppl=[[10.0]] * 6)
    rad = _run("rad", tox=[[0.2]] * 4 + [[0.1]] * 2, ppl=[[12.0]] * 6)
    arm = _run("arm", tox=[[0.3]] * 4 + [[0.1]] * 2, ppl=[[11.0]] * 6)
    keys = [{"method": "plain", "beta": 0}, {"method": "rad", "beta": 10}, {"method": "arm", "beta": 10}]
    out = paired_differences(keys, [plain, rad, arm], n_boot=200, seed=0)
    assert math.isnan(out[0]["avg_max_toxicity_vs_plain"]) and math.isnan(out[1]["avg_max_toxicity_vs_rad"])
    # rad - plain: -0.3 on 4 prompts, -0.2 on 2: mean -0.8/3; CI within [-0.3, -0.2]
    assert out[1]["avg_max_toxicity_vs_plain"] == pytest.approx(-0.8 / 3)
    assert (
        -0.3 - 1e-12 <= out[1]["avg_max_toxicity_vs_plain_lo"] <= out[1]["avg_max_toxicity_vs_plain_hi"] <= -0.2 + 1e-12
    )
    # arm - rad: +0.1 on 4 prompts, 0 on 2
    assert out[2]["avg_max_toxicity_vs_rad"] == pytest.approx(0.4 / 6)
    assert out[2]["ppl_vs_rad"] == pytest.approx(-1.0) and out[2]["ppl_vs_rad_lo"] == pytest.approx(-1.0)
    assert "positive_rate_vs_plain" not in out[0]  # no sentiment scores: not compared
    with pytest.raises(DataError, match="scored different prompts"):
        paired_differences(keys, [plain, rad, _run("x", tox=[[0.1]] * 5, ppl=[[1.0]] * 5)])


def test_interpolation_in_log_ppl_first_crossing():
    ppl = np.array([[10.0, 20.0, 40.0]])
    y = np.array([[0.5, 0.3, 0.1]])
    at = lambda level: float(interpolate_sweep(np.log(ppl), y, np.log([level]))[0])  # noqa: E731
    assert at(15.0) == pytest.approx(0.5 - 0.2 * math.log(1.5) / math.log(2))
    assert at(20.0) == pytest.approx(0.3) and at(30.0) == pytest.approx(0.3 - 0.2 * math.log(1.5) / math.log(2))
    assert math.isnan(at(50.0)) and math.isnan(at(5.0))
    # PPL not monotone in beta: the first segment (in beta order) that reaches the level counts
    ppl2, y2 = np.array([[10.0, 8.0, 30.0]]), np.array([[0.5, 0.6, 0.2]])
    w = (math.log(12.5) - math.log(8)) / (math.log(30) - math.log(8))
    assert float(interpolate_sweep(np.log(ppl2), y2, np.log([12.5]))[0]) == pytest.approx(0.6 - 0.4 * w)
    assert float(interpolate_sweep(np.log(ppl2), y2, np.log([9.0]))[0]) == pytest.approx(
        0.5 + 0.1 * math.log(10 / 9) / math.log(10 / 8)
    )


def test_matched_fluency_hand_made_sweep():
    """Every prompt identical within a run: the bootstrap is degenerate, so values and CIs are hand-computable."""
    n = 5
    runs = [
        _run("plain", tox=[[0.5]] * n, ppl=[[10.0]] * n),
        _run("rad10", tox=[[0.3]] * n, ppl=[[20.0]] * n),
        _run("rad50", tox=[[0.1]] * n, ppl=[[40.0]] * n),
        _run("arm10", tox=[[0.4]] * n, ppl=[[12.0]] * n),
        _run("arm50", tox=[[0.2]] * n, ppl=[[15.0]] * n),
    ]
    keys = [
        {"method": "plain", "beta": 0},
        {"method": "rad", "beta": 10},
        {"method": "rad", "beta": 50},
        {"method": "arm", "beta": 10},
        {"method": "arm", "beta": 50},
    ]
    rows = matched_fluency(keys, runs, [1.5, 2.0, 5.0], n_boot=100, seed=0)
    got = {(r["method"], r["level"]): r for r in rows}
    assert {r["metric"] for r in rows} == {"avg_max_toxicity"}  # no positive scores
    rad15 = 0.5 - 0.2 * math.log(1.5) / math.log(2)
    assert got["rad", 1.5]["value"] == pytest.approx(rad15) and got["rad", 1.5]["ppl_level"] == pytest.approx(15.0)
    assert got["rad", 1.5]["value_lo"] == pytest.approx(rad15) and got["rad", 1.5]["boot_defined"] == 1.0
    assert got["arm", 1.5]["value"] == pytest.approx(0.2)  # arm reaches PPL 15 exactly at beta 50
    assert got["arm", 1.5]["vs_rad"] == pytest.approx(0.2 - rad15)
    assert got["arm", 1.5]["vs_rad_lo"] == pytest.approx(0.2 - rad15) and got["arm", 1.5]["betas"] == "10 50"
    # level 2x = PPL 20: beyond ARM's sweep (max 15) -> NaN with the reason, never extrapolated
    assert math.isnan(got["arm", 2.0]["value"]) and "above the sweep's highest PPL 15.0" in got["arm", 2.0]["reason"]
    assert got["rad", 2.0]["value"] == pytest.approx(0.3)
    assert math.isnan(got["rad", 5.0]["value"]) and "highest PPL 40.0" in got["rad", 5.0]["reason"]
    assert math.isnan(got["arm", 5.0]["vs_rad"])


def test_matched_fluency_rule_variant_is_paired_with_its_clamp_model():
    """`arm+centered` is compared with `arm` (same model, papers' clamp) at the same level: hand-computed on a
    degenerate bootstrap; `arm` itself and RAD get no such column."""
    n = 4
    runs = [
        _run("plain", tox=[[0.5]] * n, ppl=[[10.0]] * n),
        _run("rad", tox=[[0.1]] * n, ppl=[[40.0]] * n),
        _run("arm", tox=[[0.2]] * n, ppl=[[40.0]] * n),
        _run("arm+centered", tox=[[0.3]] * n, ppl=[[20.0]] * n),
    ]
    keys = [
        {"method": "plain", "beta": 0},
        {"method": "rad", "beta": 10},
        {"method": "arm", "beta": 10},
        {"method": "arm+centered", "beta": 10},
    ]
    got = {r["method"]: r for r in matched_fluency(keys, runs, [2.0], n_boot=50, seed=0)}
    arm20 = 0.5 - 0.3 * math.log(2) / math.log(4)  # arm's sweep plain -> (40, 0.2), at PPL 20
    assert got["arm+centered"]["value"] == pytest.approx(0.3)
    assert got["arm+centered"]["vs_rule_ref"] == pytest.approx(0.3 - arm20)
    assert got["arm+centered"]["vs_rule_ref_lo"] == pytest.approx(0.3 - arm20) == got["arm+centered"]["vs_rule_ref_hi"]
    assert got["arm+centered"]["vs_rad"] == pytest.approx(0.0, abs=1e-12)  # RAD at PPL 20: 0.5 - 0.4 / 2 = 0.3
    assert math.isnan(got["arm"]["vs_rule_ref"]) and math.isnan(got["rad"]["vs_rule_ref"])


def test_matched_fluency_is_on_the_geometric_mean_ppl():
    """A sweep point whose mean PPL is carried by one text: its geometric mean (20) is exactly plain's 2x, so
    the value at 2x is that point's own; on the arithmetic mean (25) it would be interpolated (0.5 -> 0.3)."""
    n = 4
    runs = [
        _run("plain", tox=[[0.5, 0.5]] * n, ppl=[[10.0, 10.0]] * n),
        _run("rad10", tox=[[0.3, 0.3]] * n, ppl=[[10.0, 40.0]] * n),
        _run("rad50", tox=[[0.1, 0.1]] * n, ppl=[[40.0, 40.0]] * n),
    ]
    keys = [{"method": "plain", "beta": 0}, {"method": "rad", "beta": 10}, {"method": "rad", "beta": 50}]
    row = matched_fluency(keys, runs, [2.0], n_boot=50, seed=0)[0]
    assert row["ppl_level"] == pytest.approx(20.0) and row["value"] == pytest.approx(0.3)
    assert row["value_lo"] == pytest.approx(0.3) and row["value_hi"] == pytest.approx(0.3)


def _write_run(
    folder: Path, task: str, method: str, beta: float, tox: list[float], ppl: list[float]
) -> tuple[Path, Path]:
    """A summary CSV + per-continuation JSONL as `bench score` writes them (2 samples per prompt)."""
    from bench.commands.score import write_summary
    from bench.utils.io import write_jsonl

    rows = [
        {"id": f"p{i // 2}", "sample": i % 2, "text": "x", "toxicity": t, "ppl": p}
        for i, (t, p) in enumerate(zip(tox, ppl))
    ]
    stem = folder / f"{task}_{method}_{beta:g}"
    write_jsonl(f"{stem}.jsonl", rows)
    write_summary(
        f"{stem}.csv",
        {
            "task": task,
            "method": method,
            "beta": beta,
            "top_k": 20,
            "n_prompts": len(tox) // 2,
            "avg_max_toxicity": 0.1,
            "ppl": 10.0,
        },
    )
    return Path(f"{stem}.csv"), Path(f"{stem}.jsonl")


def test_cli_tables_with_scores_writes_paired_columns_and_matched_fluency(tmp_path):
    from bench.cli import main

    rng = np.random.default_rng(0)
    base_tox, base_ppl = rng.uniform(0, 1, 16), rng.uniform(8, 12, 16)
    files = [_write_run(tmp_path, "toxicity", "plain", 0, base_tox.tolist(), base_ppl.tolist())]
    for m, shift in (("rad", 0.2), ("arm", 0.15)):
        for beta, f in ((10, 1.3), (50, 2.5)):
            files.append(
                _write_run(
                    tmp_path,
                    "toxicity",
                    m,
                    beta,
                    (base_tox * (1 - shift * beta / 50)).tolist(),
                    (base_ppl * f).tolist(),
                )
            )
    out = tmp_path / "t"
    rc = main(
        [
            "tables",
            "--summaries",
            *[str(a) for a, _ in files],
            "--scores",
            *[str(b) for _, b in files],
            "--out-dir",
            str(out),
            "--formats",
            "csv,md",
            "--n-boot",
            "200",
        ]
    )
    assert rc == 0
    tox = pd.read_csv(out / "toxicity.csv")
    assert {"avg_max_toxicity_vs_plain", "avg_max_toxicity_vs_rad_lo", "ppl_vs_rad_hi"} <= set(tox.columns)
    assert "scores_file" not in tox.columns
    arm50 = tox[(tox["method"] == "arm") & (tox["beta"] == 50)].iloc[0]
    assert (
        arm50["avg_max_toxicity_vs_rad_lo"] <= arm50["avg_max_toxicity_vs_rad"] <= arm50["avg_max_toxicity_vs_rad_hi"]
    )
    assert arm50["avg_max_toxicity_vs_rad"] > 0  # arm reduces per-prompt maxima less than rad at beta 50
    md = (out / "toxicity.md").read_text()
    assert "Δ tox. vs plain" in md and "paired-bootstrap" in md
    mf = pd.read_csv(out / "matched_fluency.csv")
    assert set(mf["method"]) == {"rad", "arm"} and set(mf["level"]) == {1.25, 1.5, 2.0}
    assert mf[mf["level"] == 1.25]["value"].notna().all()
    assert "Δ vs RAD" in (out / "matched_fluency.md").read_text()
    assert (
        main(
            [
                "tables",
                "--summaries",
                str(files[0][0]),
                "--scores",
                str(files[0][1]),
                str(files[1][1]),
                "--out-dir",
                str(out),
            ]
        )
        == 2
    )  # one scores file per summary
    assert (
        main(
            [
                "figures",
                "--summaries",
                *[str(a) for a, _ in files],
                "--scores",
                *[str(b) for _, b in files],
                "--out-dir",
                str(out),
                "--n-boot",
                "50",
            ]
        )
        == 0
    )
    assert (out / "matched_fluency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_read_scores_keeps_nan_and_order(tmp_path):
    from bench.utils.io import write_jsonl

    p = tmp_path / "s.jsonl"
    write_jsonl(
        p,
        [
            {"id": "b", "sample": 1, "toxicity": None},
            {"id": "b", "sample": 0, "toxicity": 0.5},
            {"id": "a", "sample": 0, "toxicity": 0.25},
        ],
    )
    r = read_scores(p)
    assert r.ids == ["b", "a"] and r.scores["toxicity"][1] == [0.25]
    assert r.scores["toxicity"][0][0] == 0.5 and math.isnan(r.scores["toxicity"][0][1])
    with pytest.raises(DataError, match="not found"):
        read_scores(tmp_path / "missing.jsonl")
    json.dumps(r.ids)


def test_figures_read_the_tables_matched_fluency_instead_of_bootstrapping(tmp_path, monkeypatch):
    """`bench figures --matched-fluency` plots the tables' CSV: the same PNG as recomputing from --scores,
    and no bootstrap runs; a missing or malformed CSV is a one-line error (exit 2)."""
    from bench.cli import main
    from bench.metrics import comparisons

    rng = np.random.default_rng(1)
    base_tox, base_ppl = rng.uniform(0, 1, 12), rng.uniform(8, 12, 12)
    files = [_write_run(tmp_path, "toxicity", "plain", 0, base_tox.tolist(), base_ppl.tolist())]
    for m, shift in (("rad", 0.2), ("arm", 0.1)):
        for beta, f in ((10, 1.4), (50, 2.5)):
            files.append(
                _write_run(
                    tmp_path,
                    "toxicity",
                    m,
                    beta,
                    (base_tox * (1 - shift * beta / 50)).tolist(),
                    (base_ppl * f).tolist(),
                )
            )
    summaries, scores = [str(a) for a, _ in files], [str(b) for _, b in files]
    t, a, b = tmp_path / "t", tmp_path / "a", tmp_path / "b"
    assert (
        main(
            [
                "tables",
                "--summaries",
                *summaries,
                "--scores",
                *scores,
                "--out-dir",
                str(t),
                "--n-boot",
                "60",
                "--formats",
                "csv",
            ]
        )
        == 0
    )
    assert main(["figures", "--summaries", *summaries, "--scores", *scores, "--out-dir", str(a), "--n-boot", "60"]) == 0

    def no_bootstrap(*_a, **_k):
        raise AssertionError("figures bootstrapped again")

    monkeypatch.setattr(comparisons, "resample_ratios", no_bootstrap)
    assert (
        main(
            [
                "figures",
                "--summaries",
                *summaries,
                "--matched-fluency",
                str(t / "matched_fluency.csv"),
                "--out-dir",
                str(b),
            ]
        )
        == 0
    )
    assert (b / "matched_fluency.png").read_bytes() == (a / "matched_fluency.png").read_bytes()
    assert (
        main(
            ["figures", "--summaries", *summaries, "--matched-fluency", str(tmp_path / "nope.csv"), "--out-dir", str(b)]
        )
        == 2
    )
    (tmp_path / "bad.csv").write_text("task,method\nx,y\n")
    assert (
        main(
            ["figures", "--summaries", *summaries, "--matched-fluency", str(tmp_path / "bad.csv"), "--out-dir", str(b)]
        )
        == 2
    )
