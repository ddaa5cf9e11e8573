"""What a run costs (`bench cost`, from Snakemake benchmark records) and will cost (`bench plan`, from a config)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from helpers_reliability import REPO, bench_cmd, bench_env

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _record(path, seconds, rss, cpu="1.00"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")


@pytest.fixture
def bench_dir(tmp_path):
    b = tmp_path / "benchmarks"
    _record(b / "train" / "tox.rad.tsv", "100.0", "900.00", "90")
    _record(b / "train" / "tox.arm.tsv", "3000.0", "NA", "NA")  # no memory sample: counted, never read as 0
    _record(b / "generate" / "toxicity" / "plain_b0_k5.tsv", "10.0", "100.00", "8")
    _record(b / "tables.tsv", "2.5", "NA", "NA")
    return b


def test_cost_rows_hand_computed(bench_dir):
    from bench.reporting.cost import cost_rows, read_records

    rows = {r["stage"]: r for r in cost_rows(read_records(bench_dir), {"train": (1000, 60), "generate": (3000, 30)})}
    assert sorted(rows) == ["generate", "tables", "train"]
    t = rows["train"]
    assert (t["jobs"], t["wall_s"], t["wall_s_max"], t["cpu_s"], t["max_rss_mb"], t["mem_samples"]) == (
        2,
        3100.0,
        3000.0,
        90.0,
        900.0,
        1,
    )
    assert t["mem_used"] == pytest.approx(0.9) and t["runtime_used"] == pytest.approx(3000 / 3600)
    # rad: 900 MB > 80 % of 1000 MB; arm: 3000 s > 80 % of 60 min (its memory unknown, not read as 0)
    assert t["over"] == 2 and t["flagged"] == "train/tox.arm;train/tox.rad"
    g = rows["generate"]
    assert (g["over"], g["mem_used"], g["runtime_used"]) == (0, pytest.approx(100 / 3000), pytest.approx(10 / 1800))
    # a stage without a request (and without a memory sample) says so instead of inventing numbers
    assert (rows["tables"]["mem_mb"], rows["tables"]["over"], rows["tables"]["max_rss_mb"]) == (None, None, None)
    # the threshold moves the flag: at 0.95 neither training job is over (0.9 and 0.83 of their requests)
    rows95 = {r["stage"]: r for r in cost_rows(read_records(bench_dir), {"train": (1000, 60)}, threshold=0.95)}
    assert rows95["train"]["over"] == 0


def test_bench_cost_writes_csv_and_markdown(bench_dir, tmp_path):
    out_csv, out_md = tmp_path / "t" / "cost.csv", tmp_path / "t" / "cost.md"
    res = subprocess.run(
        bench_cmd(
            "cost", "--benchmarks", bench_dir, "--request", "train=1000,60", "--out-csv", out_csv, "--out-md", out_md
        ),
        capture_output=True,
        text=True,
        env=bench_env(),
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    lines = out_csv.read_text().splitlines()
    assert lines[0].split(",")[:3] == ["stage", "jobs", "wall_s"]
    train = next(line for line in lines if line.startswith("train,"))
    assert train.startswith("train,2,3100,3000,90,900,1,1000,60,0.9,0.8333,2,")
    md = out_md.read_text()
    assert "| train | 2 | 0:51:40 |" in md and "**2**" in md and "`train/tox.arm`" in md
    assert "nan" not in out_csv.read_text().lower() and "nan" not in md.lower()


@pytest.mark.parametrize(
    "content, message",
    [
        ("s\tmax_rss\nabc\t1\n", "line 2: column 's' is 'abc'"),
        ("s\tmax_rss\ninf\t1\n", "line 2: column 's' is 'inf'"),
        ("s\tmax_rss\n1\tnan\n", "line 2: column 'max_rss' is 'nan'"),
        ("wall\n1\n", "line 1: expected Snakemake's benchmark TSV"),
    ],
)
def test_bad_benchmark_record_is_one_line_error(tmp_path, content, message):
    bad = tmp_path / "b" / "score" / "x.tsv"
    bad.parent.mkdir(parents=True)
    bad.write_text(content)
    out = tmp_path / "o"
    res = subprocess.run(
        bench_cmd("cost", "--benchmarks", tmp_path / "b", "--out-csv", out / "c.csv", "--out-md", out / "c.md"),
        capture_output=True,
        text=True,
        env=bench_env(),
        timeout=120,
    )
    assert res.returncode == 2 and str(bad) in res.stderr and message in res.stderr, res.stderr
    assert not out.exists()  # nothing half-written


# ------------------------------------------------------------------------------------------------ bench plan
def test_plan_of_the_test_config_hand_computed():
    from bench.commands.plan import plan
    from bench.config import load_config

    s = plan(load_config(REPO / "config" / "test.yaml"))
    # 3 generation tasks (toxicity; sentiment to positive from negative, to negative from positive) x 6 settings
    # (plain + 5 parametrizations at one beta, one k); 4 prompts x 2 samples x 4 tokens each
    assert s["generate"]["jobs"] == s["score"]["jobs"] == 18
    assert sum(s["generate"]["work"].values()) == 18 * 4 * 2 * 4 and s["generate"]["work"]["plain"] == 3 * 32
    assert sum(s["score"]["work"].values()) == 18 * 8
    # 2 tasks x 5 parametrizations, 6 steps x batch 8 each
    assert s["train"]["jobs"] == 10 and sum(s["train"]["work"].values()) == 10 * 6 * 8
    # 2 training sources, 3 prompt files (rtp, sentiment-negative, sentiment-positive); (64 + 16) rows each source
    assert (s["prepare"]["jobs"], s["prepare"]["work"][""]) == (5, 160)


def test_plan_hours_scale_inversely_with_rates(tmp_path):
    from bench.commands.plan import plan, render
    from bench.config import load_config

    cfg = load_config(REPO / "config" / "paper.yaml")

    def hours(rates):
        text = render(plan(cfg), rates, cfg)
        return {m[1]: float(m[2]) for m in re.finditer(r"^(train|generate|score|total)\b.*?([\d.]+)$", text, re.M)}

    one = hours({"train": 100.0, "generate": 1000.0, "score": 50.0})
    two = hours({"train": 200.0, "generate": 2000.0, "score": 100.0})
    assert one["train"] == pytest.approx(2 * two["train"], rel=1e-2)
    # paper: 10 models x 20,000 steps x 64 examples at 100 examples/s
    assert one["train"] == pytest.approx(10 * 20000 * 64 / 100 / 3600, abs=0.05)
    # a slower method (generate.rad) only adds hours
    assert (
        hours({"train": 100.0, "generate": 1000.0, "generate.rad": 100.0, "score": 50.0})["generate"] > one["generate"]
    )


def test_plan_jobs_match_snakemakes_dag(tmp_path):
    """Two independent counts of the paper config's jobs: bench plan's and Snakemake's dry run."""
    from bench.commands.plan import plan
    from bench.config import load_config

    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(tmp_path),
            "-n",
            "--quiet",
            "rules",
            "--configfile",
            str(REPO / "config" / "paper.yaml"),
        ],
        capture_output=True,
        text=True,
        env=bench_env(),
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    stats = (res.stdout + res.stderr).split("Job stats:")[1]
    n = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}
    s = plan(load_config(REPO / "config" / "paper.yaml"))
    assert s["prepare"]["jobs"] == n["prepare_train"] + n["prepare_prompts"]
    assert s["train"]["jobs"] == n["train"] + n["train_distill"]
    assert (s["generate"]["jobs"], s["score"]["jobs"]) == (n["generate"], n["score"])
    assert s["statistics"]["jobs"] == sum(n[r] for r in ("tables", "figures", "reward_table", "reward_figure", "cost"))


def test_plan_measures_rates_from_a_run_folder(tmp_path):
    from bench.commands.plan import measured_rates

    w = tmp_path / "run"
    (w / "rewards" / "toxicity" / "rad").mkdir(parents=True)
    (w / "rewards" / "toxicity" / "rad" / "train_summary.json").write_text(
        json.dumps({"examples_seen": 1000, "train_seconds": 50.0})
    )
    (w / "gen" / "toxicity").mkdir(parents=True)
    (w / "gen" / "toxicity" / "rad_b1_k5.jsonl.meta.json").write_text(
        json.dumps({"method": "rad", "generated_tokens": 600, "wall_time_s": 3.0})
    )
    (w / "scores" / "toxicity").mkdir(parents=True)
    (w / "scores" / "toxicity" / "rad_b1_k5.csv").write_text("task,n_prompts,n_samples\ntoxicity,4,40\n")
    (w / "logs" / "score" / "toxicity").mkdir(parents=True)
    (w / "logs" / "score" / "toxicity" / "rad_b1_k5.log").write_text(
        "23:59:58 INFO bench: start\nno stamp here\n00:00:06 INFO bench: done\n"
    )  # 8 s across midnight
    rates = measured_rates(w)
    assert rates == {"train": 20.0, "train.rad": 20.0, "generate": 200.0, "generate.rad": 200.0, "score": 5.0}
    _record(w / "benchmarks" / "score" / "toxicity" / "rad_b1_k5.tsv", "4.0", "10")  # a record wins over the log
    assert measured_rates(w)["score"] == 10.0
    # the scorers' own lines win (model loading left out): 40 texts / (40 / 20 + 40 / 40) s
    (w / "logs" / "score" / "toxicity" / "rad_b1_k5.log").write_text(
        "10:00:00 INFO x: toxicity: scored 40 new texts (0 cached) at 20.0 texts/s\n"
        "10:00:09 INFO x: ppl:gpt2: scored 40 new texts (0 cached) at 40.0 texts/s\n"
    )
    assert measured_rates(w)["score"] == pytest.approx(40 / 3)


@pytest.mark.parametrize(
    "flag, message",
    [
        (["--rate", "train=-3"], "--rate 'train=-3': expected STAGE[.METHOD]=PER_S"),
        (["--rate", "decode=3"], "--rate 'decode=3'"),
        (["--rate", "score=nan"], "--rate 'score=nan'"),
    ],
)
def test_plan_bad_rate_is_one_line_error(flag, message):
    res = subprocess.run(
        bench_cmd("plan", "--configfile", REPO / "config" / "test.yaml", *flag),
        capture_output=True,
        text=True,
        env=bench_env(),
        timeout=120,
    )
    assert res.returncode == 2 and message in res.stderr, res.stderr
