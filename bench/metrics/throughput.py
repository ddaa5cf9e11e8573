"""Scoring throughput (texts/s) of scorers on the RTP continuations of the shipped data (no cache).

    python -m bench.metrics.throughput profanity-check vader tfidf-sst2:models/sst2_tfidf.json
"""

from __future__ import annotations

import argparse
import time


def measure(spec: str, texts: list[str], repeats: int = 3) -> float:
    from bench.metrics.registry import build_scorer

    scorer = build_scorer(spec)
    scorer.score(texts[:8])  # warm-up (lazy imports, first-call costs)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(texts), scorer.batch_size):
            scorer.score(texts[i:i + scorer.batch_size])
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


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
        print(f"{spec}\t{measure(spec, texts):.0f} texts/s\t({len(texts)} texts, best of 3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
