"""kill -9 a whole pipeline run at chosen points, rerun it, and compare its tables with an uninterrupted run's.

tests/test_pipeline_robustness.py does this on the test config; this script is for real configs:

    python scripts/kill_rerun.py --clone /tmp/k1 --reference /tmp/fresh/results/tables \
        --when 'runs/default/logs/train/*.log' 'step +(1[6-9]|[2-9][0-9])\\b'     # during training
    python scripts/kill_rerun.py --clone /tmp/k2 --reference ... --pause-at generate-batch:2   # during generation
    python scripts/kill_rerun.py --clone /tmp/k3 --reference ... --when ... --pause-at generate-batch:2 \
        --pause-at score-batch:2                  # one run killed during training, then generation, then scoring

`--clone` is a clone of the repository (its own runs/ and results/). `--when GLOB REGEX` kills once a file
matching GLOB (relative to the clone), written since that attempt started, contains REGEX; `--pause-at EVENT:N`
kills once a job reached its N-th progress point EVENT (bench.utils.testhooks). Several points, in the order
given, kill one run several times. Every attempt, and the final run to the end, is what README ("Interrupted
runs") tells a user: `snakemake --unlock`, then `snakemake --cores all --rerun-incomplete` (on a fresh clone
that is a plain run; on a clone killed by hand, it resumes it). Then a table-by-table comparison; timing
columns and the latency table are left out (bench.reporting.compare.comparable_table). Exit 0 when every table
is identical.
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


class _InOrder(argparse.Action):
    """--when and --pause-at append to one list, so the kill points keep the order of the command line."""

    def __call__(self, parser, namespace, values, option_string=None):
        getattr(namespace, self.dest).append((self.const, values))


def _attempt(clone: Path, cmd: list[str], env: dict, log_path: Path, kind: str, spec) -> str | None:
    """Run `cmd` until the kill point, kill -9 its process tree; the point reached, or None if the run ended."""
    pause = Path(tempfile.mkdtemp(prefix="pause-"))
    run_env = dict(env)
    if kind == "pause":
        run_env.update(BENCH_TEST_PAUSE_AT=spec, BENCH_TEST_PAUSE_DIR=str(pause))
    started = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=clone, env=run_env, stdout=log, stderr=subprocess.STDOUT)
        pattern = re.compile(spec[1]) if kind == "when" else None
        hit = None
        while hit is None:
            if proc.poll() is not None:
                print(f"the run ended (exit {proc.returncode}) before the kill point {spec}", file=sys.stderr)
                return None
            if kind == "pause":
                hit = next((p.name for p in pause.iterdir()), None)
            else:
                for f in glob.glob(str(clone / spec[0])):
                    try:
                        if os.path.getmtime(f) < started:  # an earlier attempt's file
                            continue
                        m = pattern.search(Path(f).read_text(errors="replace"))
                    except OSError:
                        continue
                    if m:
                        hit = f"{Path(f).relative_to(clone)}: {m.group(0)!r}"
                        break
            time.sleep(0.2)
        n = kill_tree(proc)
    done = len(re.findall(r"Finished jobid", log_path.read_text()))
    print(f"killed {n} processes {time.time() - started:.0f} s in ({done} jobs finished in this attempt) at {hit}")
    return hit


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clone", type=Path, required=True)
    ap.add_argument("--reference", type=Path, required=True, help="tables folder of an uninterrupted run")
    ap.add_argument("--configfile", default=None, help="passed to snakemake (default: the Snakefile's default)")
    ap.add_argument("--tables", default="results/tables", help="tables folder inside the clone")
    ap.add_argument(
        "--when", nargs=2, metavar=("GLOB", "REGEX"), dest="points", action=_InOrder, const="when", default=[]
    )
    ap.add_argument("--pause-at", metavar="EVENT:N", dest="points", action=_InOrder, const="pause")
    args = ap.parse_args()
    if not args.points:
        ap.error("give at least one kill point (--when / --pause-at)")
    clone = args.clone.resolve()
    cfg = ["--configfile", args.configfile] if args.configfile else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_TEST_")}
    snakemake = [sys.executable, "-m", "snakemake", "--cores", "all", *cfg]

    def unlock() -> None:
        subprocess.run([*snakemake[:3], "--unlock", *cfg], cwd=clone, env=env, check=True, capture_output=True)

    for i, (kind, spec) in enumerate(args.points):
        unlock()
        log = clone / f"killed_run_{i + 1}.log"
        if _attempt(clone, [*snakemake, "--rerun-incomplete"], env, log, kind, spec) is None:
            return 1
    unlock()
    t1 = time.monotonic()
    with open(clone / "rerun.log", "w") as log:
        rc = subprocess.run(
            [*snakemake, "--rerun-incomplete"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        ).returncode
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
