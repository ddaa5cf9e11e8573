"""Peak memory and wall time of the tables stage's bootstraps at paper size, before and after chunking.

Synthetic per-prompt scores of one task of `config/paper.yaml` (36 settings x 10,000 prompts, 25 samples per
prompt) go through what `bench.metrics.comparisons` does with them: the paired differences (one resample of
the 36 settings per compared statistic: avg. max toxicity, toxic rate, PPL) and matched fluency (one joint
resample of 72 rows: the fluency statistic and avg. max toxicity of every setting), each followed by its
percentile CIs. "old" is `bench/metrics/aggregate.py` as of `--reference-rev` (the last version with one-shot
`[settings x n_boot x prompts]` gathers) or a file given with `--reference`; "new" is this checkout's.

Each measurement runs in its own process: peak RSS (ru_maxrss) of that process, and the part above its
baseline (Python + numpy + the synthetic scores); the digest of all replicates shows whether old and new
drew and summed the same numbers. The old code needs ~11.5 GB for the 72-row resample at 1,000 replicates, so
by default it runs at `--old-n-boot 100` (its memory is linear in n_boot: the line also gives the 1,000-
replicate extrapolation); pass `--old-n-boot 1000` on a machine with ~16 GB free.

    python scripts/bench_bootstrap_memory.py                      # paper size: new at 1000 and 100, old at 100
    python scripts/bench_bootstrap_memory.py --old-n-boot 1000    # old at full size (needs the memory)
    python scripts/bench_bootstrap_memory.py --settings 4 --prompts 500 --n-boot 200 --old-n-boot 200  # quick
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's bench, not an installed one
REFERENCE_REV = "beb8b8ba2dbbdc4db636e3a20dd2a5545a3aca1d"  # aggregate.py before chunked replicates
SAMPLES = 25


def load_old(rev: str, path: str | None) -> types.ModuleType:
    """The reference aggregate module: a file, or the file at a git revision of this repository."""
    if path:
        source = Path(path).read_text(encoding="utf-8")
    else:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:bench/metrics/aggregate.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    mod = types.ModuleType("bench_reference_aggregate")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up
    exec(compile(source, f"{rev}:bench/metrics/aggregate.py", "exec"), mod.__dict__)
    return mod


def synthetic(settings: int, prompts: int, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-prompt (num, den) [settings, prompts] of avg. max toxicity, toxic rate, PPL and log PPL."""
    rng = np.random.default_rng(seed)
    shift = np.linspace(0.0, 1.5, settings)[:, None]
    tox_max = rng.beta(1.0 + shift, 3.0, size=(settings, prompts))
    kept = SAMPLES - rng.binomial(2, 0.02, size=(settings, prompts))  # a few PPLs dropped or NaN
    log_ppl = rng.normal(2.6 + 0.4 * shift, 0.15, size=(settings, prompts)) * kept
    ones = np.ones((settings, prompts))
    return {
        "avg_max_toxicity": (tox_max, ones),
        "toxic_rate": ((tox_max >= 0.5).astype(float), ones),
        "ppl": (np.exp(log_ppl / kept) * kept * 1.1, kept.astype(float)),
        "ppl_gmean": (log_ppl, kept.astype(float)),
    }


def workload(agg, data, n_boot: int, seed: int = 0) -> str:
    """The tables stage's bootstraps of one task; the sha256 of every replicate."""
    digest = hashlib.sha256()
    for stat in ("avg_max_toxicity", "toxic_rate", "ppl"):  # paired differences: one resample per statistic
        reps = agg.resample_ratios(*data[stat], n_boot, seed)
        digest.update(np.ascontiguousarray(reps).tobytes())
        for i in range(1, reps.shape[1]):
            agg.percentile_ci(reps[:, i] - reps[:, 0])
        del reps
    num = np.concatenate([data["ppl_gmean"][0], data["avg_max_toxicity"][0]])  # matched fluency: joint
    den = np.concatenate([data["ppl_gmean"][1], data["avg_max_toxicity"][1]])
    reps = agg.resample_ratios(num, den, n_boot, seed)
    digest.update(np.ascontiguousarray(reps).tobytes())
    for i in range(reps.shape[1]):
        agg.percentile_ci(reps[:, i])
    return digest.hexdigest()


def child(args: argparse.Namespace) -> None:
    if args.child == "old":
        agg = load_old(args.reference_rev, args.reference)
    else:
        from bench.metrics import aggregate as agg
    data = synthetic(args.settings, args.prompts)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    digest = workload(agg, data, args.n_boot)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "code": args.child,
                "n_boot": args.n_boot,
                "peak_rss_mb": peak,
                "above_baseline_mb": peak - base,
                "wall_s": wall,
                "digest": digest,
            }
        )
    )


def measure(args: argparse.Namespace, code: str, n_boot: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        code,
        "--n-boot",
        str(n_boot),
        "--settings",
        str(args.settings),
        "--prompts",
        str(args.prompts),
        "--reference-rev",
        args.reference_rev,
    ]
    if args.reference:
        cmd += ["--reference", args.reference]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--settings", type=int, default=36, help="settings of the task (paper toxicity: 36)")
    p.add_argument("--prompts", type=int, default=10_000, help="prompts (paper: 10,000)")
    p.add_argument("--n-boot", type=int, default=1000, help="replicates for the new code")
    p.add_argument(
        "--old-n-boot",
        type=int,
        default=100,
        help="replicates for the old code (0: skip it); its memory is linear in this",
    )
    p.add_argument("--reference-rev", default=REFERENCE_REV, help="git revision holding the old aggregate.py")
    p.add_argument("--reference", help="path of an old aggregate.py instead of --reference-rev")
    p.add_argument("--child", choices=("old", "new"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return 0
    print(
        f"{args.settings} settings x {args.prompts} prompts x {SAMPLES} samples; paired differences of 3 "
        f"statistics ({args.settings} rows each) + matched fluency ({2 * args.settings} rows, joint)"
    )
    runs = [("new", args.n_boot)]
    if args.old_n_boot:
        runs += (
            [("new", args.old_n_boot), ("old", args.old_n_boot)]
            if args.old_n_boot != args.n_boot
            else [("old", args.old_n_boot)]
        )
    results = [measure(args, code, n) for code, n in runs]
    print(f"{'code':<5} {'n_boot':>6} {'peak RSS MB':>12} {'above base MB':>14} {'wall s':>8}  replicates sha256")
    for r in results:
        print(
            f"{r['code']:<5} {r['n_boot']:>6} {r['peak_rss_mb']:>12.0f} {r['above_baseline_mb']:>14.0f} "
            f"{r['wall_s']:>8.2f}  {r['digest'][:16]}"
        )
    old = [r for r in results if r["code"] == "old"]
    for o in old:
        same = [r for r in results if r["code"] == "new" and r["n_boot"] == o["n_boot"]]
        if same:
            print(
                f"old vs new at n_boot={o['n_boot']}: replicates "
                f"{'IDENTICAL' if same[0]['digest'] == o['digest'] else 'DIFFER'}"
            )
        if o["n_boot"] != args.n_boot:
            # the one-shot gathers (num and den of the joint resample) are linear in n_boot
            scale = args.n_boot / o["n_boot"]
            print(
                f"old at n_boot={args.n_boot} (extrapolated, linear in n_boot): ~{o['above_baseline_mb'] * scale:.0f} MB "
                f"above baseline (the 2 x {2 * args.settings} x {args.n_boot} x {args.prompts} float64 gathers "
                f"alone: {2 * 2 * args.settings * args.n_boot * args.prompts * 8 / 2**20:.0f} MB), "
                f"~{o['wall_s'] * scale:.0f} s"
            )
    return (
        0
        if all(
            r["digest"] == o["digest"]
            for o in old
            for r in results
            if r["code"] == "new" and r["n_boot"] == o["n_boot"]
        )
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())
