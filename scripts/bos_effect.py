"""How much the one-input-convention fix changes rewards: mean |r(BOS + text) - r(text)| on held-out texts.

Before the fix, decoding fed a reward model the base LM's ids (no BOS) although training put BOS first; after
it, the model reads BOS + text everywhere. For each trained reward model of a run this prints, per
parametrization and task, the mean absolute change of the steering reward at the text's last position over
the first N held-out texts (tokenized as training does: at most max_length - 1 tokens).

    python scripts/bos_effect.py --run runs/default --n 200 [--max-length 32] [--out table.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's bench, not an installed one


def mean_abs_change(model, tokenizer, texts: list[str], max_length: int) -> tuple[float, float]:
    """(mean |r(BOS+t) - r(t)|, mean |r(BOS+t)|, texts compared) of the steering attribute at the last token."""
    steer = model.config.steer_index
    diffs, sizes = [], []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max_length - 1]
            if len(ids) < 2:  # without BOS the first token has no prefix: nothing to compare
                continue
            with_bos = torch.tensor([[model.bos_token_id] + ids])
            without = torch.tensor([ids])
            r_bos = float(model(with_bos, torch.ones_like(with_bos))[0, -1, steer])
            r_raw = float(model(without, torch.ones_like(without))[0, -1, steer])
            diffs.append(abs(r_bos - r_raw))
            sizes.append(abs(r_bos))
    return sum(diffs) / len(diffs), sum(sizes) / len(sizes), len(diffs)


def main(argv: list[str] | None = None) -> int:
    from bench.rewards.registry import load_reward_model
    from bench.utils.io import read_jsonl

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/default", help="work dir holding data/<task>/heldout.jsonl and rewards/")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--max-length", type=int, default=32, help="training's max_length (BOS + max_length - 1 tokens)")
    p.add_argument("--out", default=None, help="also write the Markdown table here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    run = Path(args.run)
    lines = [
        "| task | parametrization | texts | mean abs(r(BOS+text) - r(text)) | mean abs(r(BOS+text)) |",
        "|---|---|---|---|---|",
    ]
    for task_dir in sorted((run / "rewards").iterdir()):
        texts = [rec["text"] for rec in read_jsonl(run / "data" / task_dir.name / "heldout.jsonl")][: args.n]
        for model_dir in sorted(task_dir.iterdir()):
            if not (model_dir / "model.safetensors").exists():
                continue
            model = load_reward_model(model_dir)
            change, size, n = mean_abs_change(model, model.tokenizer, texts, args.max_length)
            lines.append(f"| {task_dir.name} | {model.config.parametrization} | {n} | {change:.4f} | {size:.4f} |")
            print(lines[-1], file=sys.stderr, flush=True)
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
