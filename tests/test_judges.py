"""Judge evidence: the rank statistics and their CIs, the Perspective calibration (fit, cross-validation, the
version refusal, the shipped file), `bench calibrate`, `bench agreement`'s rows, and `bench judges` on a
small run (calibrated numbers, agreement under steering)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest

from bench.errors import ModelError
from bench.metrics import calibration as cal
from bench.metrics import judges


# ---------------------------------------------------------------- rank statistics
def test_auc_and_spearman_by_hand_and_against_sklearn_scipy():
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    # positives .35 and .8 against negatives .1 and .4: 3 of 4 pairs ordered right
    assert judges.auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert judges.auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts one half
    assert judges.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    s = np.round(rng.random(300), 2)  # with ties
    r = np.clip(s + rng.normal(0, 0.3, 300), 0, 1)
    y = (r >= 0.5).astype(int)
    assert judges.auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert judges.spearman(s, r) == pytest.approx(spearmanr(s, r).statistic, abs=1e-12)


def test_agreement_cis_cover_the_point_and_are_seeded():
    rng = np.random.default_rng(1)
    ref = rng.random(400)
    scores = ref + rng.normal(0, 0.2, 400)
    scores[3] = float("nan")
    a = judges.agreement(scores, ref, binary=False, n_boot=200, seed=0)
    assert a["n"] == 399 and a["n_nan"] == 1 and a["n_positive"] == int((np.delete(ref, 3) >= 0.5).sum())
    assert a["auc_lo"] < a["auc"] < a["auc_hi"] and a["spearman_lo"] < a["spearman"] < a["spearman_hi"]
    assert a == judges.agreement(scores, ref, binary=False, n_boot=200, seed=0)
    none = judges.agreement(scores, ref, binary=False, n_boot=0)
    assert np.isnan(none["auc_lo"]) and none["auc"] == a["auc"]


def test_trained_on_marks():
    assert judges.trained_on("jigsaw-bilstm-toxblock", "jigsaw-2018-test").startswith("yes")
    assert judges.trained_on("profanity-check", "davidson") == "yes"
    assert judges.trained_on("tfidf-sst2:/x/model.json", "sst2-dev").startswith("related")
    assert all(judges.trained_on(j, judges.HEADLINE) == "no" for j in judges.TRAINED_ON)


# ---------------------------------------------------------------- calibration
def test_isotonic_map_equals_sklearn_predict_and_is_monotone():
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(2)
    x = rng.random(500)
    y = np.clip(x**2 + rng.normal(0, 0.1, 500), 0, 1)
    kx, ky = cal.fit_isotonic(x, y)
    probe = np.concatenate([rng.random(200) * 1.4 - 0.2, [np.nan]])
    want = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(x, y).predict(np.nan_to_num(probe[:-1]))
    got = cal.apply_map(kx, ky, probe)
    np.testing.assert_allclose(got[:-1], want, atol=1e-12)
    assert np.isnan(got[-1]) and np.all(np.diff(ky) >= 0)
    # monotone maps commute with the max over a prompt's samples
    groups = rng.random((30, 5))
    np.testing.assert_allclose(cal.apply_map(kx, ky, groups.max(1)), cal.apply_map(kx, ky, groups).max(1))


def test_cross_validation_of_an_exact_monotone_relation():
    x = np.linspace(0, 1, 200)
    y = x**3  # Perspective an exact monotone function of the judge: calibration removes the raw error
    cv = cal.cross_validate(x, y, folds=5, seed=0)
    assert len(cv["per_fold"]) == 5 and sum(r["n_test"] for r in cv["per_fold"]) == 200
    assert cv["cal_mae"] < 0.01 < cv["raw_mae"]
    assert cv["raw_mean_bias"] == pytest.approx(float(np.mean(x) - np.mean(y)), abs=0.02)
    with pytest.raises(ModelError, match="too few"):
        cal.cross_validate(x[:6], y[:6], folds=5)


def _write_cal(path, version="v1", x=(0.0, 1.0), y=(0.1, 0.9)):
    path.write_text(
        json.dumps({"format": cal.FORMAT, "judges": {"j": {"version": version, "x": list(x), "y": list(y)}}})
    )
    return path


def test_calibration_refuses_other_versions_and_bad_knots(tmp_path):
    good = _write_cal(tmp_path / "c.json")
    c = cal.Calibrated(good, "j", "v1")
    np.testing.assert_allclose(c([0.0, 0.5, 2.0]), [0.1, 0.5, 0.9])
    with pytest.raises(ModelError, match="calibrated at version 'v1', the scorer is 'v2'"):
        cal.Calibrated(good, "j", "v2")
    with pytest.raises(ModelError, match="no entry for judge 'k'"):
        cal.Calibrated(good, "k", "v1")
    with pytest.raises(ModelError, match="non-decreasing"):
        cal.Calibrated(_write_cal(tmp_path / "bad.json", y=(0.9, 0.1)), "j", "v1")


def test_shipped_calibration_fits_the_installed_judges(data_root):
    from bench.metrics.registry import build_scorer

    path = data_root / "calibration" / "perspective_isotonic.json"
    doc = json.loads(path.read_text())
    assert {"profanity-check", "jigsaw-bilstm-toxblock", "jigsaw-bilstm-tcc"} <= set(doc["judges"])
    for name in doc["judges"]:
        scorer = build_scorer(name)
        entry = cal.load_calibration(path, name, scorer.version)  # same judge version as installed
        assert entry["cv"]["cal_mae"] < entry["cv"]["raw_mae"]
    for f in doc["fitted_on"]:
        import hashlib

        from bench.data.sources import find_local

        src = find_local(f"rtp/{f['file']}".removesuffix(".gz"))
        assert hashlib.sha256(src.read_bytes()).hexdigest() == f["sha256"]


# ---------------------------------------------------------------- commands
def _rtp_file(data_root, tmp_path, n=80):
    import gzip

    lines = gzip.decompress((data_root / "rtp" / "decodingtrust_challenging.jsonl.gz").read_bytes()).splitlines()
    out = tmp_path / "rtp.jsonl"
    out.write_bytes(b"\n".join(lines[:n]) + b"\n")
    return out


def test_calibrate_command_writes_map_and_table(data_root, tmp_path):
    from bench.cli import main
    from bench.data.reference_scores import read_rtp_perspective

    out = tmp_path / "cal.json"
    table = tmp_path / "judge_calibration.csv"
    rtp = _rtp_file(data_root, tmp_path)
    assert (
        main(["calibrate", "--scorer", "profanity-check", "--rtp", str(rtp), "--out", str(out), "--table", str(table)])
        == 0
    )
    doc = json.loads(out.read_text())
    entry = doc["judges"]["profanity-check"]
    n_scored = len(read_rtp_perspective(rtp, None)["continuations"][1])  # rows whose continuation has a score
    assert entry["n"] == n_scored and 70 < n_scored <= 80 and entry["version"].startswith("alt-profanity-check==")
    assert doc["fitted_on"][0]["file"] == "rtp.jsonl" and len(entry["cv"]["per_fold"]) == 5
    rows = list(csv.DictReader(table.open()))
    assert rows[0]["judge"] == "profanity-check" and float(rows[0]["cal_mae"]) == pytest.approx(entry["cv"]["cal_mae"])
    assert table.with_suffix(".md").exists()


def test_agreement_rows_mark_training_and_headline(data_root, tmp_path):
    from bench.cli import main

    out = tmp_path / "agreement.csv"
    assert (
        main(
            [
                "agreement",
                "--scorer",
                "jigsaw-bilstm-toxblock",
                "--max-rows",
                "60",
                "--n-boot",
                "50",
                "--davidson",
                "none",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(out.open()))
    tox = [r for r in rows if r["judge"] == "jigsaw-bilstm-toxblock"]
    assert [r["reference_set"] for r in tox] == [
        "rtp-continuations",
        "rtp-nontoxic",
        "rtp-nontoxic",
        "rtp-challenging",
        "rtp-challenging",
        "jigsaw-2018-test",
    ]
    # the headline pools both files' continuations (one RTP row lacks a continuation score)
    assert tox[0]["headline"] == "True" and int(tox[0]["n"]) == int(tox[1]["n"]) + int(tox[3]["n"])
    assert tox[-1]["trained_on_it"].startswith("yes") and float(tox[-1]["auc"]) > 0.9
    assert [r["judge"] for r in rows if r["attribute"] == "positive"] == ["vader"]


def _run(tmp_path, texts_by_method):
    """Summaries + per-continuation scores of a tiny toxicity run (2 prompts x 2 samples per setting)."""
    summaries, scores = [], []
    for method, beta, texts in texts_by_method:
        s = tmp_path / f"{method}_{beta}.csv"
        pd.DataFrame(
            [
                {
                    "task": "toxicity",
                    "method": method,
                    "beta": beta,
                    "top_k": 20,
                    "avg_max_toxicity": 0.1,
                    "avg_max_toxicity_lo": 0.0,
                    "avg_max_toxicity_hi": 0.2,
                }
            ]
        ).to_csv(s, index=False)
        j = tmp_path / f"{method}_{beta}.jsonl"
        j.write_text(
            "".join(
                json.dumps({"id": f"p{i // 2}", "sample": i % 2, "text": t, "toxicity": 0.0}) + "\n"
                for i, t in enumerate(texts)
            )
        )
        summaries.append(s)
        scores.append(j)
    return summaries, scores


def test_judges_command_calibrated_numbers_and_flags(data_root, tmp_path):
    from bench.cli import main
    from bench.metrics.registry import build_scorer

    plain = ["you are a stupid idiot", "what a lovely day", "the weather is nice", "shut up, moron"]
    steered = ["thank you kindly", "what a lovely day", "the weather is nice", "have a good one"]
    summaries, scores = _run(tmp_path, [("plain", 0, plain), ("rad", 10, steered)])
    calib = data_root / "calibration" / "perspective_isotonic.json"
    out, pairs = tmp_path / "judges.csv", tmp_path / "judge_agreement.csv"
    assert (
        main(
            [
                "judges",
                "--summaries",
                *map(str, summaries),
                "--scores",
                *map(str, scores),
                "--scorer",
                "jigsaw-bilstm-toxblock",
                "--scorer",
                "profanity-check",
                "--calibration",
                str(calib),
                "--n-boot",
                "20",
                "--out",
                str(out),
                "--out-pairs",
                str(pairs),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(out.open()))
    assert [(r["method"], r["judge"], r["primary"]) for r in rows] == [
        ("plain", "jigsaw-bilstm-toxblock", "True"),
        ("plain", "profanity-check", "False"),
        ("rad", "jigsaw-bilstm-toxblock", "True"),
        ("rad", "profanity-check", "False"),
    ]
    # independent computation: calibrated avg max = mean over prompts of f(max raw score)
    tb = build_scorer("jigsaw-bilstm-toxblock")
    c = cal.Calibrated(calib, tb.name, tb.version)
    raw = np.array(tb.score(plain)).reshape(2, 2)
    assert float(rows[0]["avg_max_toxicity"]) == pytest.approx(raw.max(1).mean(), abs=1e-9)
    assert float(rows[0]["cal_avg_max_toxicity"]) == pytest.approx(c(raw.max(1)).mean(), abs=1e-9)
    assert float(rows[0]["cal_cv_mae"]) == pytest.approx(c.cv["cal_mae"])
    prs = list(csv.DictReader(pairs.open()))
    assert [p["method"] for p in prs] == ["plain", "rad"] and prs[0]["scale"] == "calibrated"
    assert float(prs[0]["spearman_vs_plain"]) == 0.0 and prs[0]["diverges"] == "False"
    assert "judges" in out.with_suffix(".md").read_text() and pairs.with_suffix(".md").exists()


def test_judges_command_refuses_another_judge_version(data_root, tmp_path):
    from bench.cli import main

    summaries, scores = _run(tmp_path, [("plain", 0, ["a", "b", "c", "d"])])
    bad = tmp_path / "cal.json"
    doc = json.loads((data_root / "calibration" / "perspective_isotonic.json").read_text())
    doc["judges"]["profanity-check"]["version"] = "alt-profanity-check==0.0.1"
    bad.write_text(json.dumps(doc))
    rc = main(
        [
            "judges",
            "--summaries",
            str(summaries[0]),
            "--scores",
            str(scores[0]),
            "--scorer",
            "profanity-check",
            "--calibration",
            str(bad),
            "--out",
            str(tmp_path / "j.csv"),
            "--out-pairs",
            str(tmp_path / "p.csv"),
        ]
    )
    assert rc == 2 and not (tmp_path / "j.csv").exists()


def test_config_checks_extra_judges():
    from pathlib import Path

    from bench.config import load_config, validate_config
    from bench.errors import ConfigError

    cfg = load_config(Path(__file__).resolve().parents[1] / "config" / "default.yaml")
    assert cfg["scoring"]["toxicity_scorer"] == "jigsaw-bilstm-toxblock"  # chosen by the headline agreement
    cfg["scoring"]["extra_toxicity_scorers"] = ["profanity-check", "vader"]
    with pytest.raises(ConfigError, match=r"scoring.extra_toxicity_scorers\[1\]' = 'vader': expected one of"):
        validate_config(cfg)


def test_gap_change_and_divergence_flags_by_hand():
    # 3 prompts x 2 samples; gap = judge a - judge b of avg max toxicity, minus the same on plain
    a = {"p0": [0.9, 0.1], "p1": [0.2, 0.3], "p2": [0.5, 0.4]}
    b = {"p0": [0.1, 0.2], "p1": [0.2, 0.1], "p2": [0.3, 0.3]}
    pa = {"p0": [0.4, 0.1], "p1": [0.2, 0.2], "p2": [0.6, 0.1]}
    pb = {"p0": [0.4, 0.3], "p1": [0.1, 0.2], "p2": [0.6, 0.5]}
    want = ((0.9 + 0.3 + 0.5) / 3 - (0.2 + 0.2 + 0.3) / 3) - ((0.4 + 0.2 + 0.6) / 3 - (0.4 + 0.2 + 0.6) / 3)
    value, lo, hi = judges.gap_change_vs_plain(a, b, pa, pb, n_boot=0, seed=0)
    assert value == pytest.approx(want) and np.isnan(lo)
    value, lo, hi = judges.gap_change_vs_plain(a, b, pa, pb, n_boot=200, seed=0)
    assert lo <= value <= hi
    plain = {"spearman": 0.8, "gap": 0.0}
    row = {
        "spearman": 0.5,
        "spearman_lo": 0.3,
        "spearman_hi": 0.7,
        "gap": 0.2,
        "gap_vs_plain": 0.2,
        "gap_vs_plain_lo": 0.1,
        "gap_vs_plain_hi": 0.3,
    }
    flagged, reason = judges.flag_divergence(row, plain, spearman_drop=0.1, gap_change=0.05)
    assert flagged and "Spearman 0.50" in reason and "change +0.200" in reason
    noisy = {**row, "spearman_hi": 0.9, "gap_vs_plain_lo": -0.1}  # CIs reach plain's value / 0: not flagged
    assert judges.flag_divergence(noisy, plain, 0.1, 0.05) == (False, "")
    assert judges.flag_divergence(plain, plain, 0.1, 0.05) == (False, "")
