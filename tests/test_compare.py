"""`bench compare`: a run's tables against reference tables, judged by the reference's confidence intervals."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest

from bench.cli import main
from bench.errors import DataError
from bench.reporting.compare import compare_tables, failed, read_table, read_table_at_revision
from tests.conftest import REPO

REF = REPO / "results" / "tables" / "toxicity.csv"


def _copy(tmp_path, edit=None):
    df = pd.read_csv(REF)
    if edit:
        df = edit(df)
    out = tmp_path / "toxicity.csv"
    df.to_csv(out, index=False)
    return out


def test_identical_tables_pass(tmp_path):
    report = compare_tables(read_table(REF), read_table(_copy(tmp_path)))
    assert report.empty and not failed(report)


def test_value_inside_and_outside_the_reference_ci(tmp_path):
    ref = pd.read_csv(REF)
    i = int(ref.index[(ref["method"] == "rad") & (ref["beta"] == 10)][0])
    lo, hi, v = ref.loc[i, ["avg_max_toxicity_lo", "avg_max_toxicity_hi", "avg_max_toxicity"]]
    inside = _copy(
        tmp_path, lambda df: df.assign(avg_max_toxicity=df["avg_max_toxicity"].where(df.index != i, (v + hi) / 2))
    )
    report = compare_tables(read_table(REF), read_table(inside))
    assert report["verdict"].tolist() == ["within_ci"] and not failed(report)
    assert report.loc[0, "method"] == "rad" and report.loc[0, "beta"] == 10
    assert report.loc[0, "difference"] == pytest.approx((hi - v) / 2)
    outside = _copy(
        tmp_path, lambda df: df.assign(avg_max_toxicity=df["avg_max_toxicity"].where(df.index != i, hi + 0.01))
    )
    report = compare_tables(read_table(REF), read_table(outside))
    assert report["verdict"].tolist() == ["outside_ci"] and failed(report)
    dist = _copy(tmp_path, lambda df: df.assign(dist1=df["dist1"] + 1e-9))  # no CI: reported, not failed
    report = compare_tables(read_table(REF), read_table(dist))
    assert set(report["verdict"]) == {"differs_no_ci"} and len(report) == len(ref) and not failed(report)


def test_missing_row_fails_and_duplicate_keys_are_refused(tmp_path):
    fewer = _copy(tmp_path, lambda df: df.drop(index=df.index[-1]))
    report = compare_tables(read_table(REF), read_table(fewer))
    assert report["verdict"].tolist() == ["missing_row"] and failed(report)
    dup = tmp_path / "dup.csv"
    pd.concat([pd.read_csv(REF)] * 2).to_csv(dup, index=False)
    with pytest.raises(DataError, match="not unique on the key columns"):
        compare_tables(read_table(REF), read_table(dup))


def test_cli_against_git_revision(tmp_path, capsys):
    repo = tmp_path / "repo"
    (repo / "t").mkdir(parents=True)
    table = repo / "t" / "toxicity.csv"
    table.write_bytes(REF.read_bytes())
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "ref"], check=True)
    assert read_table_at_revision(table, "HEAD").frame.equals(pd.read_csv(REF))
    df = pd.read_csv(REF)
    df.loc[0, "ppl"] = df.loc[0, "ppl_hi"] + 1.0
    df.to_csv(table, index=False)
    assert main(["compare", str(table)]) == 1
    out = capsys.readouterr().out
    assert "outside_ci" in out and "FAIL" in out and "HEAD:t/toxicity.csv" in out
    assert main(["compare", str(table), str(REF), "--out", str(tmp_path / "diff.csv")]) == 1
    assert pd.read_csv(tmp_path / "diff.csv")["verdict"].tolist() == ["outside_ci"]
    assert main(["compare", str(tmp_path / "none.csv")]) == 2
