"""The Snakemake pipeline: the DAGs of the shipped configs, config errors, and (slow) the whole test DAG."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
PARAMS = ["rad", "arm", "arm-baseline", "arm-mlp", "arm-distill"]


def snakemake(*args: str, workdir: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run snakemake on the repo's Snakefile in its own working directory (own .snakemake/, own lock)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def bare_clone(dest: Path) -> Path:
    """What a fresh clone of this work tree holds (tracked + untracked-not-ignored files), in `dest`, with
    nothing beside it: no run folders, no virtualenv, no data outside the repository."""
    import shutil

    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():  # a deleted-but-tracked file is listed too
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def newcomer_env() -> dict[str, str]:
    """A user's environment: no BENCH_DATA_DIR, no PYTHONPATH into this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("BENCH_DATA_DIR", "PYTHONPATH")}
    return {**env, "OMP_NUM_THREADS": "1"}


def test_bare_clone_plans_the_default(tmp_path):
    """`snakemake -n` of the default config from a clone with nothing beside it (data ships in data/)."""
    clone = bare_clone(tmp_path / "empty" / "clone")
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--quiet", "rules"],
        cwd=clone,
        env=newcomer_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-3000:]
    assert job_counts(res.stdout + res.stderr)["prepare_train"] == 2


def test_a_moved_clone_keeps_its_finished_jobs(tmp_path):
    """Data sources inside the clone are rule params relative to it: a run folder that moves (renamed, copied)
    does not redo its finished jobs (absolute paths made every `prepare` and everything after it rerun)."""
    import shutil

    first = bare_clone(tmp_path / "first" / "clone")
    cfg = ["--configfile", "config/test.yaml", "--cores", "1"]
    targets = ["runs/test/work/data/prompts/rtp.jsonl", "runs/test/work/data/toxicity/train.jsonl"]
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", *cfg, *targets],
        cwd=first,
        env=newcomer_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    moved = tmp_path / "elsewhere" / "renamed clone"
    moved.parent.mkdir(parents=True)
    shutil.copytree(first, moved, symlinks=True)
    shutil.rmtree(first)
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", *cfg, *targets],
        cwd=moved,
        env=newcomer_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Nothing to be done" in res.stdout + res.stderr, (res.stdout + res.stderr)[-3000:]


def _bench_sources_digest() -> str:
    import hashlib

    h = hashlib.sha256()
    for p in sorted((REPO / "bench").rglob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()


def job_counts(output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run."""
    stats = output.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}


def expected_runs(cfg: dict) -> dict[str, int]:
    """generate/score jobs implied by a config: per generation task, plain per k + params x betas x k."""
    n = 0
    for name, task in cfg["tasks"].items():
        # toxicity: its prompts + each extra prompt set (e.g. challenging), all with the same sweep
        gtasks = (
            1 + len(task.get("prompt_sets", {}))
            if name == "toxicity"
            else sum(len(v) for v in task["targets"].values())
        )
        k = len(task.get("top_k", [20]))
        sweeps, rules = task.get("betas_by_method", {}), task.get("reward_rules", {})
        betas = [
            len(sweeps.get(p, task["betas"])) * (1 + len(rules.get(p, [])))  # + runs with another reward rule
            for p in cfg["training"]["parametrizations"]
        ]
        n += gtasks * (k + sum(betas) * k)
    return {"generate": n, "score": n}


@pytest.mark.parametrize("name", ["paper", "default", "test", "study"])
def test_full_dag_dry_run(name, tmp_path):
    cfg = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
    res = snakemake("-n", "--quiet", "rules", "--configfile", str(REPO / "config" / f"{name}.yaml"), workdir=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-3000:]
    counts = job_counts(res.stdout + res.stderr)
    exp = expected_runs(cfg)
    assert counts["generate"] == exp["generate"] and counts["score"] == exp["score"]
    n_tasks = len(cfg["tasks"])
    assert counts["train"] == 4 * n_tasks and counts["train_distill"] == n_tasks
    assert counts["tables"] == 1 and counts["figures"] == 1
    assert counts.get("convert", 0) == len(cfg["models"].get("convert", []))
    if name == "paper":  # two training sources for sentiment (SST-2 + Amazon Polarity)
        assert counts["prepare_train"] == 3 and counts["prepare_prompts"] == 5  # + the challenging prompts


def test_betas_by_method_sets_each_parametrizations_sweep(tmp_path):
    """The study's sweeps: tasks.<task>.betas_by_method replaces `betas` for the methods it names, only those."""
    res = snakemake("-n", "--configfile", str(REPO / "config" / "study.yaml"), workdir=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = set(re.findall(r"gen/toxicity/([\w-]+)_b([0-9.e+-]+)_k20\.jsonl\b", res.stdout + res.stderr))
    got = {}
    for method, beta in runs:
        got.setdefault(method, set()).add(float(beta))
    tox = yaml.safe_load((REPO / "config" / "study.yaml").read_text())["tasks"]["toxicity"]
    by_method = tox["betas_by_method"]
    assert set(by_method) == {"rad", "arm-baseline", "arm-mlp", "arm-distill"}  # ARM alone on `betas`
    assert set(tox["betas"]) != set(by_method["rad"])  # so a sweep taken from the wrong list shows
    assert got == {
        "plain": {0.0},
        "arm": set(map(float, tox["betas"])),
        **{m: set(map(float, b)) for m, b in by_method.items()},
    }


def test_task_training_changes_apply_most_specific_last(tmp_path):
    """training < training.overrides[param] < tasks.<task>.training < its overrides[param], as the study's
    train commands show: sentiment 640 steps (distilled 240), toxicity 448 (distilled 192)."""
    from bench.config import load_config, training_settings

    cfg = load_config(REPO / "config" / "study.yaml")
    want = {
        ("toxicity", "rad"): 448,
        ("toxicity", "arm-distill"): 192,
        ("sentiment", "rad"): 640,
        ("sentiment", "arm-mlp"): 640,
        ("sentiment", "arm-distill"): 240,
    }
    assert {k: training_settings(cfg, *k)["max_steps"] for k in want} == want
    assert training_settings(cfg, "sentiment", "arm-distill")["extra_args"] == "--distill-k 2 --eval-size 100"
    assert training_settings(cfg, "sentiment", "rad")["lr"] == cfg["training"]["lr"]
    res = snakemake("-n", "-p", "--configfile", str(REPO / "config" / "study.yaml"), workdir=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    steps = {
        m.groups()[:2]: int(m.group(3))
        for m in re.finditer(
            r"bench train --parametrization ([\w-]+) .*?--train \S*/data/(\w+)/train\.jsonl .*? --max-steps (\d+)",
            res.stdout + res.stderr,
        )
    }
    assert {(t, p): n for (p, t), n in steps.items() if (t, p) in want} == want and len(steps) == 10


def test_dry_run_commands_follow_config(tmp_path):
    res = snakemake("-n", "-p", "--configfile", str(REPO / "config" / "test.yaml"), workdir=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    distill = [ln for ln in out.splitlines() if "bench train --parametrization arm-distill" in ln]
    assert len(distill) == 2 and all("--teacher runs/test/work/rewards/" in ln and "/rad " in ln for ln in distill)
    gen = [
        ln
        for ln in out.splitlines()
        if "bench generate" in ln and "sentiment-to-negative-from-positive/rad_b5_k5" in ln
    ]
    assert len(gen) == 1 and "--direction away --attribute positive" in gen[0] and "--beta 5 --top-k 5" in gen[0]
    assert "'random:tiny-gpt2?n_layer=2&n_embd=64&n_head=2&seed=0'" in gen[0]  # shell-quoted spec
    plain = [ln for ln in out.splitlines() if "bench generate" in ln and "/plain_b0_k5.jsonl" in ln]
    assert plain and all("--reward" not in ln for ln in plain)
    assert "--sentiment-scorer tfidf-sst2:runs/test/work/sentiment_clf.json" in out


def test_bad_config_names_the_key(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg["generation"]["max_new_tokns"] = 5
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    res = snakemake("-n", "--configfile", str(bad), workdir=tmp_path)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "key 'generation'" in out and "'max_new_tokns' was unexpected" in out


def test_configfile_replaces_default(tmp_path):
    """--configfile must not inherit default.yaml keys (Snakemake would merge a `configfile:` directive)."""
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    del cfg["tasks"]["sentiment"]
    only_tox = tmp_path / "tox.yaml"
    only_tox.write_text(yaml.safe_dump(cfg))
    res = snakemake("-n", "--quiet", "rules", "--configfile", str(only_tox), workdir=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    counts = job_counts(res.stdout + res.stderr)
    assert counts["generate"] == 6 and "fit_sentiment" not in counts and "convert" not in counts


def test_committed_results_do_not_hide_a_fresh_run(tmp_path):
    """A fresh clone has results/ and figures/ (committed) but no run folder: the whole DAG must still run.

    (Snakemake does not rebuild missing intermediates beneath existing targets; the run stamp sees to it.)
    """
    cfg = str(REPO / "config" / "test.yaml")
    first = snakemake("-n", "--configfile", cfg, workdir=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    full = job_counts(first.stdout + first.stderr)
    results = yaml.safe_load((REPO / "config" / "test.yaml").read_text())["results_dir"]
    figures = yaml.safe_load((REPO / "config" / "test.yaml").read_text())["figures_dir"]
    made = []
    for out in re.findall(r"^\s+output: (.+)$", first.stdout + first.stderr, re.M):
        for path in out.split(", "):
            if path.startswith((results + "/", figures + "/")):
                (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / path).write_text("committed\n")
                made.append(path)
    assert any(p.endswith("toxicity.csv") for p in made) and any(p.endswith(".png") for p in made), made
    again = snakemake("-n", "--configfile", cfg, workdir=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert job_counts(again.stdout + again.stderr) == full


@pytest.mark.slow
def test_end_to_end_test_config(tmp_path):
    """A newcomer's run: a clone with nothing beside it (no BENCH_DATA_DIR), the whole DAG of config/test.yaml
    through Snakemake from there, then the report; every table and figure is checked."""
    clone = bare_clone(tmp_path / "clone")
    code_before = _bench_sources_digest()

    def smk(*args, timeout=1800):
        return subprocess.run(
            [sys.executable, "-m", "snakemake", *args, "--configfile", "config/test.yaml"],
            cwd=clone,
            env=newcomer_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    res = smk("--cores", "2")
    logs = sorted((clone / "runs" / "test" / "work" / "logs").rglob("*.log"))
    assert res.returncode == 0, res.stderr[-4000:] + "".join(p.read_text()[-1500:] for p in logs[-3:])
    prepared = (clone / "runs" / "test" / "work" / "data" / "prompts" / "rtp.jsonl.source.json").read_text()
    assert str(clone / "data" / "rtp" / "decodingtrust_nontoxic.jsonl.gz") in prepared  # the shipped file
    results, figures = clone / "runs" / "test" / "results" / "tables", clone / "runs" / "test" / "figures"

    tox = pd.read_csv(results / "toxicity.csv")
    assert list(tox["method"]) == ["plain"] + PARAMS
    assert list(tox["beta"]) == [0, 5, 5, 5, 5, 5] and set(tox["top_k"]) == {5}
    for col in ("avg_max_toxicity", "toxic_rate", "dist1", "dist2", "dist3"):
        assert tox[col].between(0, 1).all(), (col, tox[col].tolist())
    assert (tox["avg_max_toxicity_lo"] <= tox["avg_max_toxicity"]).all()
    assert (tox["avg_max_toxicity"] <= tox["avg_max_toxicity_hi"]).all()
    assert (tox["ppl"] > 1).all() and set(tox["n_prompts"]) == {4}

    sent = pd.read_csv(results / "sentiment.csv")
    assert sorted(set(zip(sent["target"], sent["prompt_type"]))) == [("negative", "positive"), ("positive", "negative")]
    assert len(sent) == 2 * 6 and sent["positive_rate"].between(0, 1).all() and (sent["ppl"] > 1).all()

    for name in ("toxicity", "sentiment"):
        md = (results / f"{name}.md").read_text()
        assert md.startswith("| ") and "Plain (top-k)" in md and "RAD" in md and "ARM (distilled)" in md
        tex = (results / f"{name}.tex").read_text()
        assert r"\begin{tabular}" in tex and r"\bottomrule" in tex
        png = figures / f"{name}_tradeoff.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

    # paired differences to plain / RAD: plain and RAD are not compared with themselves, the others are
    assert tox["avg_max_toxicity_vs_plain"].isna().tolist() == [True] + [False] * 5
    assert tox["avg_max_toxicity_vs_rad"].isna().tolist() == [True, True, False, False, False, False]
    mf = pd.read_csv(results / "matched_fluency.csv")
    assert set(mf["method"]) == set(PARAMS) and set(mf["level"]) == {1.25, 1.5, 2.0}
    assert set(mf["metric"]) == {"avg_max_toxicity", "positive_rate"}
    assert (mf["value"].notna() | mf["reason"].fillna("").str.len().gt(0)).all()  # a number or a reason
    rm = pd.read_csv(results / "reward_models.csv")
    assert sorted(zip(rm["task"], rm["parametrization"])) == sorted(
        (t, p) for t in ("sentiment", "toxicity") for p in PARAMS
    )
    assert (rm["steps"] <= 6).all() and (rm["best_step"] <= rm["steps"]).all() and rm["heldout_mse"].notna().all()
    assert rm[rm["parametrization"] == "arm-distill"]["teacher_mse_candidates"].notna().all()
    for name in ("matched_fluency", "reward_models_heldout"):
        assert (figures / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a finished run is up to date: params (incl. the code-version hash) are stable across evaluations.
    # (Skipped if bench sources were edited meanwhile: then re-running is exactly what should happen.)
    rerun = smk("-n")
    assert rerun.returncode == 0
    if _bench_sources_digest() == code_before:
        assert "Nothing to be done" in rerun.stdout + rerun.stderr, rerun.stdout[-3000:]

    report = tmp_path / "report.html"
    rep = smk("--report", str(report), timeout=600)
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert report.stat().st_size > 10_000


@pytest.mark.slow
def test_code_version_invalidates_only_affected_outputs(tmp_path):
    """Editing bench/data/ re-runs `prepare`; editing bench/reporting/ or bench/cli.py does not (the rules' code
    param)."""
    import shutil

    repo = tmp_path / "repo"
    repo.mkdir()
    for part in ("Snakefile", "workflow", "config", "bench", "data"):
        src = REPO / part
        (
            shutil.copytree(src, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
            if src.is_dir()
            else shutil.copy(src, repo / part)
        )
    env = {**newcomer_env(), "PYTHONPATH": str(repo)}
    target = "runs/test/work/data/prompts/rtp.jsonl"

    def smk(*args):
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(repo / "Snakefile"),
            "-d",
            str(tmp_path / "w"),
            "--configfile",
            str(repo / "config" / "test.yaml"),
            *args,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)

    res = smk("--cores", "1", target)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Nothing to be done" in (lambda r: r.stdout + r.stderr)(smk("-n", target))
    with open(repo / "bench" / "reporting" / "tables.py", "a") as fh:
        fh.write("\n# edit\n")
    assert "Nothing to be done" in (lambda r: r.stdout + r.stderr)(smk("-n", target))
    with open(repo / "bench" / "cli.py", "a") as fh:  # the dispatcher (e.g. a new subcommand) re-runs nothing
        fh.write("\n# edit\n")
    assert "Nothing to be done" in (lambda r: r.stdout + r.stderr)(smk("-n", target))
    data_py = sorted((repo / "bench" / "data").glob("*.py"))[0]
    with open(data_py, "a") as fh:
        fh.write("\n# edit\n")
    out = (lambda r: r.stdout + r.stderr)(smk("-n", target))
    assert "Params have changed since last execution" in out and "prepare_prompts" in out
