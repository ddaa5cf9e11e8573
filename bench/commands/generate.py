"""`bench generate`: plain (no --reward) or reward-guided sampling of continuations to a JSONL file.

Resumable: every finished batch is appended to `<out>.partial.jsonl` (next to its settings in
`<out>.partial.meta.json`); a restart with the same settings skips the prompts found there. Samples are
seeded per prompt id, so the final file has the same bytes whether or not the run was interrupted.
The final JSONL and `<out>.meta.json` are written atomically; the partial files are then removed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
from pathlib import Path

from bench.errors import ConfigError, DataError

log = logging.getLogger(__name__)

PROMPT_FIELDS = ("id", "prompt")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True, help="base LM spec (hub id, folder, embedded:..., random:...)")
    p.add_argument("--reward", default=None, help="reward-model folder; plain top-k sampling when absent")
    p.add_argument("--prompts", required=True, help="prompts JSONL ({id, prompt, ...})")
    p.add_argument("--out", required=True, help="output generations JSONL")
    p.add_argument("--beta", type=float, default=0.0, help="reward weight (>= 0)")
    p.add_argument("--top-k", type=int, default=20, help="candidates kept per step (RAD k)")
    p.add_argument("--direction", choices=["away", "toward"], default="away",
                   help="steer away from (1-r) or toward (r) the attribute")
    p.add_argument("--attribute", default=None, help="reward output that steers (default: the model's steer_attribute)")
    p.add_argument("--num-samples", type=int, default=25)
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8, help="prompts per batch (x num-samples rows)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-prompts", type=int, default=None, help="only the first N prompts")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--task", default=None, help="task label stored in the meta file (e.g. detox, sentiment)")


def read_prompts(path: str | os.PathLike, max_prompts: int | None) -> list[dict]:
    from bench.utils.io import iter_jsonl

    records, seen = [], set()
    for lineno, rec in iter_jsonl(path):
        for key in PROMPT_FIELDS:
            if key not in rec:
                raise DataError(f"{path}: line {lineno}: missing key '{key}'; expected {{id, prompt, ...}}")
        if not isinstance(rec["prompt"], str) or not rec["prompt"]:
            raise DataError(f"{path}: line {lineno}: 'prompt' must be a non-empty string")
        rec["id"] = str(rec["id"])
        if rec["id"] in seen:
            raise DataError(f"{path}: line {lineno}: duplicate id '{rec['id']}'")
        seen.add(rec["id"])
        records.append(rec)
        if max_prompts is not None and len(records) >= max_prompts:
            break
    if not records:
        raise DataError(f"{path}: no prompts")
    return records


def _read_partial(path: Path, settings: dict) -> dict[str, dict]:
    """Completed records of an interrupted run with the same settings (a torn last line is dropped)."""
    meta_path = Path(f"{path}.meta.json")
    if not path.exists() or not meta_path.exists():
        return {}
    try:
        old = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        old = None
    if old != settings:
        log.warning("%s: written with other settings; starting over", path)
        return {}
    done: dict[str, dict] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break  # the line being written when the run was killed
            done[rec["id"]] = rec
    return done


def _settings(args: argparse.Namespace, method: str, beta: float) -> dict:
    return {"method": method, "reward_model": str(args.reward) if args.reward else None, "beta": beta,
            "top_k": args.top_k, "direction": args.direction, "attribute": args.attribute,
            "num_samples": args.num_samples, "max_new_tokens": args.max_new_tokens, "seed": args.seed,
            "base": args.base, "task": args.task, "prompts": str(args.prompts), "max_prompts": args.max_prompts,
            "dtype": args.dtype}


def run(args: argparse.Namespace) -> int:
    import torch
    import transformers

    from bench.models.loading import load_causal_lm, load_tokenizer, resolve_device
    from bench.rewards.registry import load_reward_model
    from bench.utils.io import atomic_open, write_json

    out = Path(args.out)
    prompts = read_prompts(args.prompts, args.max_prompts)
    device = resolve_device(args.device)
    base = load_causal_lm(args.base, dtype=args.dtype, device=str(device))
    tok = load_tokenizer(args.base)
    reward = None
    method, beta = "plain", float(args.beta)
    if not beta >= 0:
        raise ConfigError(f"--beta {beta}: expected a number >= 0")
    if args.reward:
        reward = load_reward_model(args.reward, device=str(device))
        method = reward.config.parametrization
        if args.attribute is None:
            args.attribute = reward.config.steer_attribute
    elif beta:
        log.warning("--beta %s ignored: no --reward given, plain top-k sampling", beta)
        beta = 0.0
    settings = _settings(args, method, beta)

    partial = Path(f"{out}.partial.jsonl")
    done = _read_partial(partial, settings)
    todo = [r for r in prompts if r["id"] not in done]
    if done:
        log.info("resuming: %d of %d prompts already in %s", len(prompts) - len(todo), len(prompts), partial)
    else:
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text("", encoding="utf-8")
        write_json(f"{partial}.meta.json", settings)

    try:
        stats = _generate_into(partial, done, todo, base, tok, reward, beta, args)
    except BaseException:
        if not done and partial.exists() and partial.stat().st_size == 0:  # nothing finished: leave nothing behind
            partial.unlink(missing_ok=True)
            Path(f"{partial}.meta.json").unlink(missing_ok=True)
        raise

    with atomic_open(out) as fh:
        for rec in prompts:
            g = done[rec["id"]]
            row = {"id": rec["id"], "prompt": rec["prompt"], "continuations": g["continuations"]}
            row.update({k: v for k, v in rec.items() if k not in row})
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    meta = dict(settings)
    meta.update(stats)
    meta.update(n_prompts=len(prompts), resumed_prompts=len(prompts) - len(todo), batch_size=args.batch_size,
                device=str(device), torch=torch.__version__, transformers=transformers.__version__,
                python=platform.python_version(), out=str(out))
    write_json(f"{out}.meta.json", meta)
    partial.unlink(missing_ok=True)
    Path(f"{partial}.meta.json").unlink(missing_ok=True)
    log.info("wrote %d prompts x %d samples to %s (%.1f tokens/s)", len(prompts), args.num_samples, out,
             meta.get("tokens_per_s") or float("nan"))
    return 0


def _generate_into(partial: Path, done: dict, todo: list[dict], base, tok, reward, beta: float,
                   args: argparse.Namespace) -> dict:
    """Generate the prompts not yet done into `done`, appending each finished batch to the partial file
    (fsynced); returns the run's token counts and timings."""
    from bench.decoding.generate import generate_continuations

    with open(partial, "a", encoding="utf-8") as fh:
        def on_batch(_start: int, recs: list[dict]) -> None:
            for rec in recs:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

        stats: dict = {}
        if todo:
            generated = generate_continuations(
                base, tok, [r["prompt"] for r in todo], reward, top_k=args.top_k, beta=beta,
                direction=args.direction, num_samples=args.num_samples, max_new_tokens=args.max_new_tokens,
                batch_size=args.batch_size, seed=args.seed, attribute=args.attribute,
                keys=[r["id"] for r in todo], on_batch=on_batch, stats=stats)
            done.update({g["id"]: g for g in generated})

    return stats
