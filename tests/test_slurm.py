"""The tiny pipeline through a real one-node SLURM cluster (scripts/slurm_local.sh) with profiles/slurm.

1. every non-local job is submitted to SLURM (a SLURM job id per job in Snakemake's log, a log file under
   .snakemake/slurm_logs/, and the id COMPLETED in `squeue -t all`);
2. a second run in a fresh folder: one running job is `scancel`ed, Snakemake fails, rerunning the same
   command with --rerun-incomplete (after --unlock if needed) completes, and the generations and tables are
   byte-identical to the first run's.

Skipped (with the reason printed) only if the SLURM packages cannot be installed or the cluster cannot start.
Each run uses its own --directory, so its .snakemake/ (locks, metadata) never touches the checkout's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers_reliability import REPO, bench_env, comparable_table

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SCRIPT = REPO / "scripts" / "slurm_local.sh"
PROFILE = REPO / "profiles" / "slurm"
LOCAL_RULES = {"all", "run_stamp", "merge_splits"}  # statistics (tables, figures, cost) are SLURM jobs too
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def _skip(reason: str) -> None:
    print(f"SKIP test_slurm: {reason}", file=sys.stderr)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm_cluster():
    if shutil.which("snakemake") is None:
        _skip("snakemake is not installed")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        _skip("snakemake-executor-plugin-slurm is not installed (pip install -e .[slurm])")
    if os.geteuid() != 0:
        _skip("starting a local SLURM cluster needs root (apt-get, system daemons)")
    status = subprocess.run([str(SCRIPT), "status"], capture_output=True, text=True)
    was_running = status.returncode == 0
    # two simulated GPUs, for configs whose resources ask one per train/generate/score job (the node has 2 CPUs)
    env = dict(os.environ, SLURM_LOCAL_GPUS=os.environ.get("SLURM_LOCAL_GPUS", "2"))
    start = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, env=env, timeout=900)
    if start.returncode == 4:
        _skip(f"SLURM packages cannot be installed: {start.stderr.strip()[-500:]}")
    if start.returncode != 0:
        _skip(
            f"the local SLURM cluster cannot start (exit {start.returncode}): "
            f"{(start.stdout + start.stderr).strip()[-800:]}"
        )
    yield
    if not was_running:  # leave the machine as we found it (config parked: snakemake stays fast)
        subprocess.run([str(SCRIPT), "stop"], capture_output=True, text=True, timeout=120)


def _write_config(run_dir: Path) -> Path:
    """config/test.yaml, cut to the toxicity task and two parametrizations (fewer jobs on 2 cores)."""
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg["work_dir"], cfg["results_dir"], cfg["figures_dir"] = "work", "results", "figures"
    cfg["tasks"]["sentiment"]["enabled"] = False
    cfg["training"]["parametrizations"] = ["rad", "arm"]
    cfg["latency"], cfg["rank"] = {"enabled": False}, {"enabled": False}  # covered by tests/test_pipeline.py
    cfg["training"]["extra_args"] = "--checkpoint-every 2"  # a progress point to cancel at (exact resume)
    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _snakemake_cmd(run_dir: Path, *extra: str) -> list[str]:
    # targets (none here: rule all) would go BEFORE any --default-resources/--set-resources flags
    return [
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(run_dir),
        "--configfile",
        str(run_dir / "config.yaml"),
        "--profile",
        str(PROFILE),
        "--jobs",
        "4",
        "--slurm-keep-successful-logs",
        *extra,
    ]


def _env() -> dict[str, str]:
    # sbatch exports the environment: PYTHONPATH lets the jobs' `python -m bench` find the checkout
    return bench_env({"PYTHONPATH": str(REPO)})


def _squeue_all() -> dict[str, str]:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %T"], capture_output=True, text=True, check=True)
    return dict(line.split() for line in out.stdout.splitlines() if line.strip())


def _remote_rule_blocks(log: str) -> list[str]:
    return re.findall(r"^rule (\w+):$", log, flags=re.M)


def _outputs(run_dir: Path) -> dict[str, bytes]:
    """Generations JSONL and every table file, by path relative to the run folder."""
    gens = [p for p in sorted((run_dir / "work" / "gen").rglob("*.jsonl")) if ".partial" not in p.name]
    tables = [p for p in sorted((run_dir / "results" / "tables").glob("*")) if p.is_file()]
    out = {str(p.relative_to(run_dir)): p.read_bytes() for p in gens}
    out.update({str(p.relative_to(run_dir)): comparable_table(p) for p in tables})  # timing columns dropped
    return {k: v for k, v in out.items() if v is not None}


def test_pipeline_runs_through_slurm_and_survives_scancel(slurm_cluster, tmp_path):
    # ---------------------------------------------------------------- run 1: uninterrupted
    run1 = tmp_path / "run1"
    run1.mkdir()
    _write_config(run1)
    t0 = time.monotonic()
    res = subprocess.run(_snakemake_cmd(run1), capture_output=True, text=True, env=_env(), timeout=1800)
    wall = time.monotonic() - t0
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-6000:]
    print(f"\nSLURM run 1 (test pipeline, toxicity task, rad+arm): {wall:.0f} s wall", file=sys.stderr)

    submitted = SUBMITTED.findall(log)
    rules = _remote_rule_blocks(log)
    assert rules, "no job ran as a SLURM job"
    assert not set(rules) & LOCAL_RULES
    assert {"tables", "figures", "cost"} <= set(rules), "statistics ran on the submitting node"
    assert len(submitted) == len(rules), f"{len(rules)} non-local jobs but {len(submitted)} SLURM submissions"
    states = _squeue_all()
    for jobid, job_log in submitted:
        assert Path(job_log).exists(), f"SLURM log {job_log} missing"
        assert states.get(jobid) == "COMPLETED", f"SLURM job {jobid}: {states.get(jobid)} in squeue -t all"
    # the job's own log (written by SLURM, named by its id) shows the step ran inside that allocation
    for jobid, job_log in submitted:
        assert Path(job_log).name == f"{jobid}.log"
        assert "Finished jobid" in Path(job_log).read_text(errors="replace") or "steps (100%) done" in Path(
            job_log
        ).read_text(errors="replace"), job_log
    ref = _outputs(run1)
    assert any(k.startswith("work/gen/") for k in ref) and any(k.startswith("results/tables") for k in ref)

    # ---------------------------------------------------------------- run 2: scancel one running job
    run2 = tmp_path / "run2"
    run2.mkdir()
    _write_config(run2)
    before = set(_squeue_all())
    log_file = open(tmp_path / "run2_first_attempt.log", "w")  # a file, not a pipe nobody drains
    # A training job pauses right after its first checkpoint is on disk (bench.utils.testhooks), so the cancel
    # lands at that point on any machine, never after a guessed delay; the others are released afterwards.
    pause = tmp_path / "pause"
    proc = subprocess.Popen(
        _snakemake_cmd(run2),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        text=True,
        env={**_env(), "BENCH_TEST_PAUSE_AT": "train-checkpoint:1", "BENCH_TEST_PAUSE_DIR": str(pause)},
        start_new_session=True,
    )
    cancelled = None
    deadline = time.monotonic() + 900
    try:
        while cancelled is None and proc.poll() is None and time.monotonic() < deadline:
            if not (pause.exists() and any(p.name.startswith("train-checkpoint.") for p in pause.iterdir())):
                time.sleep(0.1)  # polling for the marker; the cancel point is the job's, not this loop's
                continue
            out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %k"], capture_output=True, text=True)
            running = [line.split(None, 1) for line in out.stdout.splitlines() if line.strip()]
            running = [r for r in running if r[0] not in before]
            # a training job (its rule name is in the job's comment), paused with a checkpoint to resume from
            running = [r for r in running if len(r) > 1 and r[1].startswith(("rule_train_", "rule_train"))]
            if running:
                subprocess.run(["scancel", running[0][0]], check=True)
                cancelled = running[0]
                (pause / "release").write_text("go\n")  # other paused jobs carry on
        proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
        log_file.close()
    assert cancelled is not None, "no SLURM training job seen running to cancel"
    print(f"run 2: scancel {cancelled}; snakemake exited {proc.returncode}", file=sys.stderr)
    states = _squeue_all()
    assert states.get(cancelled[0]) == "CANCELLED", f"job {cancelled[0]}: {states.get(cancelled[0])}"
    assert proc.returncode != 0, "snakemake reported success although a job was cancelled"

    t0 = time.monotonic()
    rerun = subprocess.run(
        _snakemake_cmd(run2, "--rerun-incomplete"), capture_output=True, text=True, env=_env(), timeout=1800
    )
    if rerun.returncode != 0 and "locked" in (rerun.stdout + rerun.stderr).lower():
        subprocess.run(_snakemake_cmd(run2, "--unlock"), capture_output=True, text=True, env=_env(), check=True)
        rerun = subprocess.run(
            _snakemake_cmd(run2, "--rerun-incomplete"), capture_output=True, text=True, env=_env(), timeout=1800
        )
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-6000:]
    print(
        f"rerun with --rerun-incomplete: {time.monotonic() - t0:.0f} s wall, "
        f"{len(SUBMITTED.findall(rerun.stdout + rerun.stderr))} SLURM jobs",
        file=sys.stderr,
    )
    assert SUBMITTED.findall(rerun.stdout + rerun.stderr), "the rerun submitted nothing to SLURM"
    got = _outputs(run2)
    assert sorted(got) == sorted(ref)
    differ = {
        k: _differing_columns(ref[k], got[k]) if k.endswith(".csv") else "bytes differ" for k in ref if got[k] != ref[k]
    }
    print(f"compared {len(ref)} files (generations + tables); differing: {differ or 'none'}", file=sys.stderr)
    assert not differ, f"outputs differ from the uninterrupted run after scancel + rerun: {differ}"


def _differing_columns(x: bytes, y: bytes) -> list[str]:
    import csv
    import io

    rx = list(csv.DictReader(io.StringIO(x.decode())))
    ry = list(csv.DictReader(io.StringIO(y.decode())))
    return sorted({k for a, b in zip(rx, ry) for k in a if a.get(k) != b.get(k)}) or ["row count / order"]
