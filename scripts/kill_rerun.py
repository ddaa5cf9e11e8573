"""kill -9 a whole pipeline run at a chosen point, rerun it the documented way, and check its tables against an
uninterrupted run's (tests/test_pipeline_robustness.py does this on the test config; this is for real configs).

    python scripts/kill_rerun.py --clone /tmp/k1 --reference /tmp/fresh/results/tables \
        --when 'runs/default/logs/train/*/*.log' 'step +(1[6-9]|[2-9][0-9])\\b'     # during training
    python scripts/kill_rerun.py --clone /tmp/k2 --reference ... --pause-at generate-batch:2   # during generation

`--clone` is a clone of the repository (its own runs/ and results/). `--when GLOB REGEX` kills once a file
matching GLOB (relative to the clone) contains REGEX; `--pause-at EVENT:N` kills once a job reached its N-th
progress point EVENT (bench.utils.testhooks). Then: `snakemake --unlock`, `snakemake --cores all
--rerun-incomplete` (README, "Interrupted runs"), and a table-by-table comparison; timing columns and the
latency table are left out (bench.reporting.compare.comparable_table). Exit 0 when every table is identical.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.reporting.compare import comparable_table
from bench.utils.testhooks import kill_tree

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clone", type=Path, required=True)
    ap.add_argument("--reference", type=Path, required=True, help="tables folder of an uninterrupted run")
    ap.add_argument("--configfile", default=None, help="passed to snakemake (default: the Snakefile's default)")
    ap.add_argument("--tables", default="results/tables", help="tables folder inside the clone")
    ap.add_argument("--when", nargs=2, metavar=("GLOB", "REGEX"))
    ap.add_argument("--pause-at", metavar="EVENT:N")
    args = ap.parse_args()
    if bool(args.when) == bool(args.pause_at):
        ap.error("give exactly one of --when / --pause-at")
    clone = args.clone.resolve()
    cfg = ["--configfile", args.configfile] if args.configfile else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_TEST_")}
    pause = Path(tempfile.mkdtemp(prefix="pause-"))
    kill_env = dict(env)
    if args.pause_at:
        kill_env.update(BENCH_TEST_PAUSE_AT=args.pause_at, BENCH_TEST_PAUSE_DIR=str(pause))
    t0 = time.monotonic()
    with open(clone / "killed_run.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "all", *cfg], cwd=clone, env=kill_env,
                                stdout=log, stderr=subprocess.STDOUT)
        pattern = re.compile(args.when[1]) if args.when else None
        hit = None
        while hit is None:
            if proc.poll() is not None:
                print(f"the run ended (exit {proc.returncode}) before the kill point", file=sys.stderr)
                return 1
            if args.pause_at:
                hit = next((p.name for p in pause.iterdir()), None)
            else:
                for f in glob.glob(str(clone / args.when[0])):
                    try:
                        m = pattern.search(Path(f).read_text(errors="replace"))
                    except OSError:
                        continue
                    if m:
                        hit = f"{Path(f).relative_to(clone)}: {m.group(0)!r}"
                        break
            time.sleep(0.2)
        n = kill_tree(proc)
    killed_after = time.monotonic() - t0
    done = len(re.findall(r"Finished jobid", (clone / "killed_run.log").read_text()))
    print(f"killed {n} processes {killed_after:.0f} s in ({done} jobs finished) at {hit}")
    subprocess.run([sys.executable, "-m", "snakemake", "--unlock", *cfg], cwd=clone, env=env, check=True,
                   capture_output=True)
    t1 = time.monotonic()
    with open(clone / "rerun.log", "w") as log:
        rc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "all", "--rerun-incomplete", *cfg],
                            cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    text = (clone / "rerun.log").read_text()
    jobs = re.search(r"(\d+) of (\d+) steps \(100%\) done", text)
    print(f"rerun: exit {rc} after {time.monotonic() - t1:.0f} s, {jobs.group(2) if jobs else '?'} jobs")
    if rc != 0:
        print(text[-3000:], file=sys.stderr)
        return 1
    same, differ = [], []
    for ref in sorted(args.reference.glob("*.csv")):
        want = comparable_table(ref)
        if want is None:
            continue
        got_path = clone / args.tables / ref.name
        got = comparable_table(got_path) if got_path.exists() else None
        (same if got == want else differ).append(ref.name)
    print(f"tables identical to the uninterrupted run: {len(same)} ({', '.join(same)})")
    print(f"tables that differ: {', '.join(differ) or 'none'}")
    return 0 if not differ else 1


if __name__ == "__main__":
    sys.exit(main())
