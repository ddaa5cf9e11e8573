"""`bench conclusions`: the verdicts of paired CIs, and which of them two tables folders share (the judge
re-scoring of docs/judges.md reads it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.reporting.conclusions import compare_conclusions, verdict

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TABLES = REPO / "results" / "tables"


@pytest.mark.parametrize(
    "lo, hi, sign, expected",
    [
        (-0.2, -0.1, -1, "better"),  # less toxic when steering away
        (0.1, 0.2, -1, "worse"),  # a backfire
        (-0.1, 0.1, -1, "n.s."),
        (0.0, 0.2, -1, "n.s."),  # a CI touching 0 does not exclude it
        (0.05, 0.2, 1, "better"),  # more positive when steering toward
        (-0.2, -0.05, 1, "worse"),
        (float("nan"), 0.1, 1, "undefined"),
        (None, None, 1, "undefined"),
    ],
)
def test_verdict_by_hand(lo, hi, sign, expected):
    assert verdict(lo, hi, sign) == expected


def test_default_tables_agree_with_themselves_and_one_flipped_ci_is_found(tmp_path, capsys):
    from bench.cli import main

    same = compare_conclusions(DEFAULT_TABLES, DEFAULT_TABLES)
    tox = pd.read_csv(DEFAULT_TABLES / "toxicity.csv")
    n_steered = int((tox["method"] != "plain").sum())
    assert (same["table"] == "toxicity").sum() == n_steered and same["same"].all()
    assert set(same["kind"]) == {"vs plain", "vs RAD, matched fluency"}

    other = tmp_path / "tables"
    shutil.copytree(DEFAULT_TABLES, other)
    # RAD's largest beta: make its paired CI vs plain lie above 0 (more toxic: a backfire)
    i = tox[tox["method"] == "rad"]["beta"].idxmax()
    before = verdict(tox.at[i, "avg_max_toxicity_vs_plain_lo"], tox.at[i, "avg_max_toxicity_vs_plain_hi"], -1)
    tox.loc[i, ["avg_max_toxicity_vs_plain", "avg_max_toxicity_vs_plain_lo", "avg_max_toxicity_vs_plain_hi"]] = [
        0.2,
        0.1,
        0.3,
    ]
    tox.to_csv(other / "toxicity.csv", index=False)
    assert main(["conclusions", str(DEFAULT_TABLES), str(other), "--out", str(tmp_path / "c.csv")]) == 0
    printed = capsys.readouterr().out
    changed = pd.read_csv(tmp_path / "c.csv").query("not same")
    assert len(changed) == 1 and changed.iloc[0]["method"] == "rad" and changed.iloc[0]["verdict_b"] == "worse"
    assert changed.iloc[0]["verdict_a"] == before != "worse"
    assert f"vs plain: {len(same[same['kind'] == 'vs plain']) - 1}/" in printed and "changed:" in printed


def test_not_a_folder_is_a_clear_error(tmp_path, caplog):
    from bench.cli import main

    assert main(["conclusions", str(tmp_path / "nope"), str(DEFAULT_TABLES)]) == 2
    assert f"{tmp_path / 'nope'}: not a tables folder" in caplog.text
