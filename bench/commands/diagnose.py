"""`bench diagnose`: the spread of a reward model's candidate rewards within a decoding step, its relation to
the judge's score, toxic vs non-toxic prefixes (`bench.analysis.diagnose`; docs/challenging.md).

    bench diagnose --base embedded:smollm2-135m --reward runs/default/rewards/toxicity/arm-mlp \\
        --generations nontoxic=runs/default/gen/toxicity/plain_b0_k20.jsonl \\
        --scores nontoxic=runs/default/scores/toxicity/plain_b0_k20.jsonl \\
        --generations challenging=runs/default/gen/toxicity-challenging/plain_b0_k20.jsonl \\
        --scores challenging=runs/default/scores/toxicity-challenging/plain_b0_k20.jsonl \\
        --out-csv diagnosis.csv --out-md diagnosis.md
"""

from __future__ import annotations

import argparse
import logging

from bench.errors import ConfigError
from bench.utils.argtypes import positive_int

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True, help="base LM spec whose top-k candidates decoding reweights")
    p.add_argument("--reward", nargs="+", required=True, help="trained reward-model folder(s)")
    p.add_argument(
        "--generations",
        action="append",
        required=True,
        metavar="NAME=JSONL",
        help="a prompt set's generations (`bench generate` output); repeat for several sets",
    )
    p.add_argument(
        "--scores",
        action="append",
        default=[],
        metavar="NAME=JSONL",
        help="the judge's scores of the same generations (`bench score --out-scores`), same NAME",
    )
    p.add_argument(
        "--judge",
        default=None,
        help="also score every candidate's text with this scorer (e.g. profanity-check) for the "
        "within-step correlation of rewards and judge",
    )
    p.add_argument("--top-k", type=positive_int, default=20)
    p.add_argument("--attribute", default=None, help="reward output (default: each model's steer_attribute)")
    p.add_argument("--max-texts", type=positive_int, default=None, help="replay only the first N continuations per set")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", default=None)


def _named(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"{flag} {item!r}: expected NAME=PATH, e.g. challenging=gen/plain_b0_k20.jsonl")
        if name in out:
            raise ConfigError(f"{flag}: the name {name!r} is given twice")
        out[name] = path
    return out


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from bench.analysis.diagnose import read_judge, replay, summarize, to_markdown
    from bench.commands.score import read_generations
    from bench.models.loading import load_causal_lm, load_tokenizer
    from bench.rewards.registry import load_reward_model
    from bench.utils.io import atomic_outputs, check_writable

    gens, scores = _named(args.generations, "--generations"), _named(args.scores, "--scores")
    unknown = sorted(set(scores) - set(gens))
    if unknown:
        raise ConfigError(f"--scores {unknown}: no --generations with that name (have {sorted(gens)})")
    outs = [args.out_csv] + ([args.out_md] if args.out_md else [])
    check_writable(*outs)
    sets = {name: read_generations(path)[0] for name, path in gens.items()}
    base = load_causal_lm(args.base, device=args.device)
    tok = load_tokenizer(args.base)
    judge_scorer = None
    if args.judge:
        from bench.metrics.registry import build_scorer

        judge_scorer = build_scorer(args.judge, device=args.device)
    rows = []
    for folder in args.reward:
        rm = load_reward_model(folder, device=args.device)
        attr = args.attribute or rm.config.steer_attribute
        for name, records in sets.items():
            judge = read_judge(scores[name], attr) if name in scores else {}
            traces = replay(
                rm,
                base,
                tok,
                records,
                judge,
                prompt_set=name,
                top_k=args.top_k,
                attribute=attr,
                max_texts=args.max_texts,
                judge_scorer=judge_scorer,
            )
            rows += summarize(traces, rm.config.parametrization)
            log.info("%s on %s: %d continuations replayed", rm.config.parametrization, name, len(traces))
    df = pd.DataFrame(rows)
    with atomic_outputs(*outs) as temps:
        df.to_csv(temps[0], index=False, lineterminator="\n")
        if args.out_md:
            temps[1].write_text(to_markdown(rows), encoding="utf-8")
    print(to_markdown(rows))
    return 0
