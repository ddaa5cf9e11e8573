"""The whole pipeline under hostile conditions: paths with spaces, and kill -9 of the Snakemake process tree
at three points (training, generation, scoring) followed by the documented rerun command. Each kill lands at
a point a job signals (BENCH_TEST_PAUSE_AT: the job writes a marker after its progress is on disk and waits),
never after a delay."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench.utils.testhooks import kill_tree
from helpers_reliability import comparable_table

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
# The commands the README gives after the pipeline was killed: release Snakemake's lock (a kill -9 leaves it),
# then rerun, redoing the jobs that were running.
UNLOCK = ("--unlock",)
RERUN = ("--cores", "2", "--rerun-incomplete")


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    for k in ("BENCH_TEST_KILL_AT", "BENCH_TEST_PAUSE_AT", "BENCH_TEST_PAUSE_DIR"):
        env.pop(k, None)
    env.update(extra or {})
    return env


def _cmd(workdir: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(SNAKEFILE),
        "-d",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        *args,
    ]


def _write_config(workdir: Path, **top) -> None:
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg["tasks"].pop("sentiment")  # one task is enough for these tests (2 CPU cores)
    cfg["training"]["parametrizations"] = ["rad", "arm"]
    cfg["training"]["extra_args"] = "--checkpoint-every 2"  # a resumable training step (exact resume)
    cfg.pop("latency", None)
    cfg["latency"] = {"enabled": False}
    cfg["rank"] = {"enabled": False}
    cfg.update(top)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))


def _tables(workdir: Path, cfg_results: str) -> dict[str, bytes]:
    """Every table, comparable across runs (timing columns dropped: helpers_reliability.comparable_table)."""
    folder = workdir / cfg_results / "tables"
    tables = {p.name: comparable_table(p) for p in sorted(folder.iterdir()) if p.is_file()}
    return {k: v for k, v in tables.items() if v is not None}


def test_every_shell_command_quotes_its_paths(tmp_path):
    """Dry run with spaces in every folder: each shell command, split as the shell would, keeps every path whole."""
    folders = ("wkx zqa", "rsx zqb", "fgx zqc")  # words found nowhere else in a command
    _write_config(tmp_path, work_dir=f"{folders[0]}/runs", results_dir=folders[1], figures_dir=folders[2])
    res = subprocess.run(
        _cmd(tmp_path, "-n", "-p", "--cores", "1", "--forceall"),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    commands = [line for line in res.stdout.splitlines() if "python -m bench" in line or " > " in line]
    assert len(commands) > 10, res.stdout[-3000:]
    for line in commands:
        for token in shlex.split(line):
            for folder in folders:
                if any(word in token for word in folder.split()):  # a piece of the path: it must be whole
                    assert folder in token, f"an unquoted path with a space in: {line}"


@pytest.mark.slow
def test_pipeline_runs_with_spaces_in_its_folders(tmp_path, data_root):
    d = tmp_path / "a folder with spaces"
    _write_config(d, work_dir="work dir/runs", results_dir="res dir", figures_dir="fig dir")
    res = subprocess.run(_cmd(d, "--cores", "2"), capture_output=True, text=True, env=_env(), timeout=1800)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    assert (d / "res dir" / "tables" / "toxicity.csv").exists()
    assert not any(p.name in ("work", "res", "fig") for p in d.iterdir()), (
        "a stray file named after a path's first word"
    )


def _run_and_kill_at(workdir: Path, event: str) -> str:
    """Start the pipeline; when the first job reaches `event` (its progress on disk), kill the whole tree."""
    pause = workdir / "pause"
    log = open(workdir / f"killed_at_{event}.log", "w")
    proc = subprocess.Popen(
        _cmd(workdir, "--cores", "2"),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env({"BENCH_TEST_PAUSE_AT": f"{event}:1", "BENCH_TEST_PAUSE_DIR": str(pause)}),
    )
    try:
        deadline = time.monotonic() + 1800
        while not (pause.exists() and any(pause.iterdir())):
            if proc.poll() is not None:
                raise AssertionError(
                    f"the pipeline ended (exit {proc.returncode}) before any job reached {event}: "
                    + (workdir / f"killed_at_{event}.log").read_text()[-3000:]
                )
            assert time.monotonic() < deadline, f"no job reached {event}"
            time.sleep(0.05)  # polling for the marker only; the kill point is the job's, not this loop's
        marker = next(pause.iterdir()).name
        kill_tree(proc)
        return marker
    finally:
        if proc.poll() is None:
            kill_tree(proc)
        log.close()


@pytest.mark.slow
def test_kill9_pipeline_tree_then_rerun_gives_identical_tables(tmp_path, data_root):
    ref = tmp_path / "reference"
    _write_config(ref)
    res = subprocess.run(_cmd(ref, "--cores", "2"), capture_output=True, text=True, env=_env(), timeout=1800)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    want = _tables(ref, "runs/test/results")
    assert "toxicity.csv" in want

    report = []
    for event in ("train-checkpoint", "generate-batch", "score-batch"):
        d = tmp_path / event
        _write_config(d)
        marker = _run_and_kill_at(d, event)
        assert not (d / "runs/test/results/tables/toxicity.csv").exists()
        unlock = subprocess.run(_cmd(d, *UNLOCK), capture_output=True, text=True, env=_env(), timeout=600)
        assert unlock.returncode == 0, (unlock.stdout + unlock.stderr)[-3000:]
        rerun = subprocess.run(_cmd(d, *RERUN), capture_output=True, text=True, env=_env(), timeout=1800)
        text = rerun.stdout + rerun.stderr
        assert rerun.returncode == 0, f"rerun after a kill at {event} failed:\n{text[-4000:]}"
        got = _tables(d, "runs/test/results")
        differ = sorted(k for k in want if got.get(k) != want[k])
        report.append(f"{event} ({marker}): rerun exit {rerun.returncode}, tables differing: {differ or 'none'}")
        assert sorted(got) == sorted(want) and not differ, report[-1]
        if event == "generate-batch":  # the killed job's finished batches were resumed, not redone
            metas = list((d / "runs/test/work/gen").rglob("*.meta.json"))
            import json

            assert any(json.loads(m.read_text()).get("resumed_prompts", 0) > 0 for m in metas)
    print("\n".join(report), file=sys.stderr)
