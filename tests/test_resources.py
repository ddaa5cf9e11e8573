"""The config's `resources:` table is what every job gets, on every executor: asked of Snakemake itself.

A dry run of config/paper.yaml with each shipped profile prints every job's threads and resources as Snakemake
resolved them (profile defaults, set-resources and rule resources merged); they must be the config's
(`bench.config.resource`, resources.<key> -> resources.default -> built-in). Until issue 27 the SLURM
profile's set-resources silently cut paper training from 1,440 to 240 minutes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from helpers_reliability import REPO, bench_env

PAPER = REPO / "config" / "paper.yaml"
RESOURCE_KEYS = ("threads", "mem_mb", "runtime", "gpu")
# rule -> its entry in the config's resources table (stated here, independently of the rule files)
CONFIG_KEY = {
    "convert": "convert",
    "prepare_train": "prepare",
    "prepare_prompts": "prepare",
    "fit_sentiment": "fit_sentiment",
    "train": "train",
    "train_distill": "train",
    "generate": "generate",
    "score": "score",
    "agreement": "score",
    "judges": "score",
    "tables": "report",
    "figures": "report",
    "reward_table": "report",
    "reward_figure": "report",
    "cost": "report",
    "latency": "latency",
    "rank": "rank",
    "rank_sweep": "report",
    "report_html": "report",
    "diagnose": "generate",
}
# steps that never use a GPU request none, whatever resources.default says
CPU_ONLY = {
    "convert",
    "prepare_train",
    "prepare_prompts",
    "fit_sentiment",
    "agreement",
    "judges",
    "tables",
    "figures",
    "reward_table",
    "reward_figure",
    "cost",
    "rank_sweep",
    "report_html",
    "diagnose",
}
LOCAL = {"all", "run_stamp", "merge_splits"}  # a `date`, a `cat` and the target list: nothing to submit


def dry_run_jobs(tmp_path, profile: str, *configs) -> list[dict]:
    """Every job of a dry run: rule, threads and resources as Snakemake prints them.
    `--cores 256`: a dry run without --cores caps threads at 1 (snakemake.cli); a SLURM run has no such cap."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(tmp_path),
        "-n",
        "--profile",
        str(REPO / "profiles" / profile),
        "--cores",
        "256",
        "--configfile",
        *map(str, configs),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, env=bench_env(), timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", out)[1:]:
        head = re.match(r"(?:local)?rule (\w+):", block)
        threads = re.search(r"^    threads: (\d+)$", block, re.M)
        resources = re.search(r"^    resources: (.*)$", block, re.M)
        got = dict(kv.split("=", 1) for kv in resources.group(1).split(", ")) if resources else {}
        jobs.append(
            {
                "rule": head[1],
                "threads": int(threads[1]) if threads else 1,
                **{k: got.get(k) for k in ("mem_mb", "runtime", "gpu", "slurm_partition")},
            }
        )
    return jobs


def local_rules(workdir) -> set[str]:
    """The rules Snakemake runs on the submitting node, from its API (a dry run prints them like any other)."""
    code = f"""
import json
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, DAGSettings, ResourceSettings, StorageSettings
with SnakemakeApi() as api:
    wf = api.workflow(snakefile=Path({str(REPO / "Snakefile")!r}), workdir=Path({str(workdir)!r}),
                      resource_settings=ResourceSettings(cores=1), storage_settings=StorageSettings(),
                      config_settings=ConfigSettings(configfiles=[Path({str(PAPER)!r})]))
    wf.dag(DAGSettings())
    print(json.dumps(sorted(wf._workflow._localrules)))
"""
    workdir.mkdir(parents=True, exist_ok=True)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=bench_env(), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return set(json.loads(res.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("profile", ["slurm", "local"])
def test_every_rule_of_the_paper_config_gets_the_config_resources(tmp_path, profile):
    from bench.config import load_config, resource

    cfg = load_config(PAPER)
    jobs = dry_run_jobs(tmp_path, profile, PAPER)
    rules = {j["rule"] for j in jobs}
    assert {"train", "train_distill", "generate", "score", "tables", "figures", "cost"} <= rules
    assert not rules - set(CONFIG_KEY) - LOCAL, f"rules with no stated config entry: {rules - set(CONFIG_KEY) - LOCAL}"
    wrong = []
    for job in (j for j in jobs if j["rule"] not in LOCAL):
        key = CONFIG_KEY[job["rule"]]
        want = {k: resource(cfg, key, k) for k in RESOURCE_KEYS}
        if job["rule"] in CPU_ONLY:
            want["gpu"] = 0
        got = {"threads": job["threads"], **{k: int(job[k]) for k in ("mem_mb", "runtime", "gpu")}}
        if got != want:
            wrong.append((job["rule"], got, want))
    assert not wrong, wrong[:5]
    # the numbers of issue 27, spelled out: a paper training job is not cut to 8 GB / 4 hours
    train = next(j for j in jobs if j["rule"] == "train")
    assert (train["threads"], train["mem_mb"], train["runtime"], train["gpu"]) == (8, "32000", "1440", "1")
    if profile == "slurm":  # the profile still adds what is cluster-specific
        assert {j["slurm_partition"] for j in jobs} == {"debug"}


def test_only_trivial_rules_are_local(tmp_path):
    """Statistics (tables, figures, cost) are cluster jobs with stated resources, not login-node work."""
    assert local_rules(tmp_path) == LOCAL


def test_an_overlay_config_changes_what_jobs_get(tmp_path):
    """The rehearsal overlay's resources reach the jobs through the SLURM profile (one thread, 2 GB, no GPU)."""
    jobs = [
        j for j in dry_run_jobs(tmp_path, "slurm", PAPER, REPO / "config" / "rehearsal.yaml") if j["rule"] not in LOCAL
    ]
    assert {(j["threads"], j["mem_mb"], j["runtime"], j["gpu"]) for j in jobs} == {(1, "2000", "30", "0")}


@pytest.mark.parametrize("profile", ["slurm", "local"])
def test_profiles_name_no_job_resources(profile):
    """A profile's set-resources / default-resources would win over the config: only cluster-specific keys
    (partition, account, GPU model) may be there."""
    prof = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())
    per_rule = prof.get("set-resources") or {}
    assert not {k for r in per_rule.values() for k in r} & set(RESOURCE_KEYS), per_rule
    assert "set-threads" not in prof
    if profile == "slurm":
        assert not set(prof.get("default-resources") or {}) & set(RESOURCE_KEYS)
