"""Scoring throughput (texts/s) of scorers on the RTP continuations of the shipped data (no cache).

Timed by the package's one timing tool (`bench.analysis.latency.timed`: torch.utils.benchmark's Timer + the
machine's load); a measurement that is not trusted says UNSTABLE and why.

    python -m bench.metrics.throughput profanity-check vader tfidf-sst2:models/sst2_tfidf.json
"""

from __future__ import annotations

import argparse


def measure(spec: str, texts: list[str]) -> tuple[float, list[str]]:
    """Texts per second of one scorer over `texts` (median of Timer samples) and why it is unstable, if it is."""
    from bench.analysis.latency import Thresholds, assess, timed
    from bench.metrics.registry import build_scorer

    scorer = build_scorer(spec)
    scorer.score(texts[:8])  # warm-up (lazy imports, first-call costs)

    def score_all() -> None:
        for i in range(0, len(texts), scorer.batch_size):
            scorer.score(texts[i : i + scorer.batch_size])

    t = timed(score_all, min_run_time=1.0, max_run_time=10.0)
    return len(texts) / t.median, assess(t.times, None, None, t.others_cpu, Thresholds())


def main(argv: list[str] | None = None) -> int:
    from bench.commands.agreement import _default, read_rtp_perspective

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("specs", nargs="+")
    p.add_argument("--rtp", default=None)
    p.add_argument("--n", type=int, default=1200)
    args = p.parse_args(argv)
    texts = read_rtp_perspective(_default(args.rtp, "rtp/decodingtrust_nontoxic.jsonl"), None)["continuations"][0]
    texts = (texts * (args.n // max(1, len(texts)) + 1))[: args.n]
    for spec in args.specs:
        rate, reasons = measure(spec, texts)
        note = f"UNSTABLE: {'; '.join(reasons)}" if reasons else "stable"
        print(f"{spec}\t{rate:.0f} texts/s\t({len(texts)} texts, median of Timer samples; {note})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
