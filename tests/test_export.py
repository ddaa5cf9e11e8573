"""`bench export`: a run as Parquet that `datasets` loads, a data card, and a table cell recomputed from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import datasets  # a declared dependency: missing is a failure, never a skip
import numpy as np
import pandas as pd
import pytest

from helpers_report import EXTRA_JUDGE, N_SAMPLES, PROMPTS, SETTINGS, extra_judge_score, make_run

REPO = Path(__file__).resolve().parents[1]


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    run = make_run(tmp_path_factory.mktemp("run"))
    out = tmp_path_factory.mktemp("export") / "ds"
    res = bench("export", str(run), str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    return run, out


def test_export_loads_with_datasets_and_recomputes_a_cell(exported, tmp_path):
    run, out = exported
    ds = datasets.load_dataset(
        "parquet", data_files=str(out / "data" / "continuations.parquet"), split="train", cache_dir=str(tmp_path / "hf")
    )
    n_settings = sum(len(v) for v in SETTINGS.values())
    assert len(ds) == n_settings * len(PROMPTS) * N_SAMPLES
    df = ds.to_pandas()
    assert df.groupby("setting").size().eq(len(PROMPTS) * N_SAMPLES).all()
    assert not df.duplicated(["setting", "prompt_id", "sample"]).any()  # the join key a re-scorer uses

    # avg. max toxicity of RAD at beta 10 = mean over prompts of the max over its samples (NaN samples skipped)
    rad = df[df["setting"] == "toxicity/rad_b10_k5"]
    per_prompt_max = rad.groupby("prompt_id", sort=False)["toxicity"].max().to_numpy()
    value = per_prompt_max.sum() / len(per_prompt_max)
    summary = pd.read_csv(run / "scores" / "toxicity" / "rad_b10_k5.csv")
    assert value == summary["avg_max_toxicity"].iloc[0]  # exactly: the same floats, summed in prompt order

    # plain has one unscored continuation: NaN in the export, and the prompt's max is over the other two
    plain = df[df["setting"] == "toxicity/plain_b0_k5"]
    assert plain["toxicity"].isna().sum() == 1
    pm = plain.groupby("prompt_id", sort=False)["toxicity"].max()
    assert pm.sum() / len(pm) == pd.read_csv(run / "scores" / "toxicity" / "plain_b0_k5.csv")["avg_max_toxicity"][0]

    # the continuations are the generated texts, each with its prompt
    gens = pd.read_json(run / "gen" / "toxicity" / "rad_b10_k5.jsonl", lines=True)
    first = rad[(rad["prompt_id"] == "p0") & (rad["sample"] == 2)].iloc[0]
    assert first["continuation"] == gens.loc[0, "continuations"][2] and first["prompt"] == PROMPTS[0]
    assert first["prompt_toxicity"] == 0.0

    settings = datasets.load_dataset(str(out), "settings", split="train", cache_dir=str(tmp_path / "hf2")).to_pandas()
    assert len(settings) == n_settings and settings["setting"].is_unique
    assert set(settings["setting"]) == set(df["setting"])
    row = settings[settings["setting"] == "toxicity/rad_b10_k5"].iloc[0]
    assert row["avg_max_toxicity"] == value and row["beta"] == 10 and row["method"] == "rad"


def test_extra_judges_come_from_the_score_cache(exported):
    """`bench judges` leaves its extra judges' scores in the run's score cache: the export carries them as
    `judge:<name>` columns (NaN where a text was not scored), the summaries' own judge only once."""
    _, out = exported
    df = pd.read_parquet(out / "data" / "continuations.parquet")
    assert [c for c in df.columns if c.startswith("judge:")] == [f"judge:{EXTRA_JUDGE[0]}"]
    col = df[f"judge:{EXTRA_JUDGE[0]}"]
    scored = (df["task"] == "toxicity") & (df["method"] != "arm-baseline")
    assert col[scored].tolist() == [extra_judge_score(t) for t in df.loc[scored, "continuation"]]
    assert col[~scored].isna().all()  # other tasks, and the setting the judge did not score
    card = (out / "README.md").read_text()
    assert f"| extra toxicity judge | `{EXTRA_JUDGE[0]}` | `{EXTRA_JUDGE[1]}` |" in card


def test_data_card_names_schema_judges_and_licenses(exported):
    _, out = exported
    card = (out / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n")
    for needle in (
        "`continuation`",
        "`ppl`",
        "| toxicity_scorer | `profanity-check` | `alt-profanity-check==1.5` |",
        "`tfidf-sst2/abc123`",
        "Apache-2.0",
        "CC BY-SA 4.0",
        "rtp/decodingtrust_nontoxic.jsonl.gz",
        "`random:tiny-gpt2`",
        "Software: python 3.11.2, torch 2.13.0+cpu, packages digest `feedbeef`",
    ):
        assert needle in card, needle
    assert "/somewhere/" not in card  # no machine-specific absolute paths, in the card or the rows
    df = pd.read_parquet(out / "data" / "continuations.parquet")
    assert set(df["prompt_source"]) == {
        "rtp/decodingtrust_nontoxic.jsonl.gz",
        "sentiment_prompts-10k/negative_prompts.jsonl.gz",
    }


def test_export_is_deterministic(exported, tmp_path):
    run, out = exported
    again = tmp_path / "again"
    assert bench("export", str(run), str(again)).returncode == 0
    a = pd.read_parquet(out / "data" / "continuations.parquet")
    b = pd.read_parquet(again / "data" / "continuations.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert (out / "README.md").read_text() == (again / "README.md").read_text()
    order = list(dict.fromkeys(a["setting"]))
    sent = "sentiment-to-positive-from-negative"
    assert order[:4] == [f"{sent}/plain_b0_k5", f"{sent}/rad_b5_k5", "toxicity/plain_b0_k5", "toxicity/rad_b5_k5"]
    assert np.array_equal(a["sample"].to_numpy()[:3], [0, 1, 2])


def test_export_of_a_folder_without_runs_fails_in_one_line(tmp_path):
    res = bench("export", str(tmp_path), str(tmp_path / "out"))
    assert res.returncode == 2 and "no scored runs" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


STUDY_EXPORT = REPO / "results" / "study" / "export"


def test_committed_study_export_recomputes_a_table_cell(tmp_path):
    """The study's released data set (`bench export runs/study results/study/export`) reproduces a committed
    table cell exactly: RAD's avg. max toxicity at its strongest beta."""
    assert (STUDY_EXPORT / "data" / "continuations.parquet").is_file(), (
        f"{STUDY_EXPORT}: the committed export is missing"
    )
    ds = datasets.load_dataset(
        "parquet",
        data_files=str(STUDY_EXPORT / "data" / "continuations.parquet"),
        split="train",
        cache_dir=str(tmp_path / "hf"),
    )
    df = ds.to_pandas()
    table = pd.read_csv(REPO / "results" / "study" / "tables" / "toxicity.csv")
    rad = table[(table["task"] == "toxicity") & (table["method"] == "rad")].sort_values("beta").iloc[-1]
    rows = df[(df["task"] == "toxicity") & (df["method"] == "rad") & (df["beta"] == rad["beta"])]
    per_prompt_max = rows.groupby("prompt_id", sort=False)["toxicity"].max().to_numpy()
    assert len(per_prompt_max) == rad["n_prompts"]
    assert per_prompt_max.sum() / len(per_prompt_max) == rad["avg_max_toxicity"]
