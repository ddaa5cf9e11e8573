"""`bench speed`: a quick throughput table (not the fixed-protocol latency benchmark, see `bench latency`).

Decoding tokens/s of plain top-k sampling, RAD (k candidates scored in one cached forward per step) and ARM
(one forward scores the whole vocabulary) with the base LM and an N-layer reward trunk, at a few batch
sizes; plus reward-model training steps/s when `bench.training` is available. Untrained heads are fine:
speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import logging
import time

from bench.utils.argtypes import layers

log = logging.getLogger(__name__)

PROMPT = "The city council met on Tuesday to discuss the new budget, and several residents said that"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default="embedded:smollm2-135m")
    p.add_argument("--reward-layers", type=layers, default=6,
                   help="blocks of the base kept in the reward trunk ('all': every one)")
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    p.add_argument("--methods", nargs="+", default=["plain", "rad", "arm"])
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--train-steps", type=int, default=3, help="timed training steps per parametrization (0: skip)")
    p.add_argument("--train-batch", type=int, default=8)
    p.add_argument("--train-length", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--out", default=None, help="also write the rows as JSON")


def _reward_model(method: str, args, device):
    from bench.rewards.base import RewardConfig
    from bench.rewards.registry import build_reward_model

    cfg = RewardConfig(method, args.base, num_layers=args.reward_layers, dtype=args.dtype)
    return build_reward_model(cfg, device=str(device)).eval()


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _decode_row(base, tok, rm, batch: int, args, device) -> dict:
    from bench.decoding.generate import generate_continuations

    prompts = [f"{PROMPT} ({i})" for i in range(batch)]
    kw = dict(top_k=args.top_k, beta=1.0 if rm is not None else 0.0, num_samples=1, batch_size=batch,
              seed=0, progress=False)
    generate_continuations(base, tok, prompts, rm, max_new_tokens=2, **kw)  # warm-up
    _sync(device)
    stats: dict = {}
    generate_continuations(base, tok, prompts, rm, max_new_tokens=args.max_new_tokens, stats=stats, **kw)
    _sync(device)
    return {"tokens": stats["generated_tokens"], "seconds": stats["wall_time_s"], "tokens_per_s": stats["tokens_per_s"]}


def _train_row(rm, args, device) -> dict:
    import torch

    from bench.training.losses import cumulative_mse

    rm.train()
    params = [p for p in rm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, rm.vocab_size, (args.train_batch, args.train_length), generator=gen).to(device)
    mask = torch.ones_like(ids)
    labels = torch.rand(args.train_batch, rm.config.num_outputs, generator=gen).to(device)

    def step() -> None:
        loss = cumulative_mse(rm(ids, mask), labels, mask)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(args.train_steps):
        step()
    _sync(device)
    wall = time.perf_counter() - t0
    rm.eval()
    return {"steps": args.train_steps, "seconds": wall, "steps_per_s": args.train_steps / wall}


def run(args: argparse.Namespace) -> int:
    import torch

    from bench.models.loading import load_causal_lm, load_tokenizer, resolve_device
    from bench.utils.io import write_json

    device = resolve_device(args.device)
    base = load_causal_lm(args.base, dtype=args.dtype, device=str(device))
    tok = load_tokenizer(args.base)
    rows: list[dict] = []
    models = {}
    for method in args.methods:
        rm = None
        if method != "plain":
            try:
                rm = _reward_model(method, args, device)
            except (ImportError, AttributeError) as exc:
                log.warning("skipping %s: its reward model is not available (%s)", method, exc)
                continue
            models[method] = rm
        for batch in args.batch_sizes:
            res = _decode_row(base, tok, rm, batch, args, device)
            rows.append({"what": "decode", "method": method, "batch": batch, **res})
            log.info("%s batch %d: %.1f tokens/s", method, batch, res["tokens_per_s"])
    if args.train_steps > 0:
        try:
            import bench.training.losses  # noqa: F401
        except ImportError as exc:
            log.warning("training speed skipped: bench.training is not available (%s)", exc)
        else:
            for method, rm in models.items():
                res = _train_row(rm, args, device)
                rows.append({"what": "train", "method": method, "batch": args.train_batch, **res})

    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"# bench speed: base {args.base}, reward trunk {args.reward_layers} layers, top-k {args.top_k}, "
          f"{args.max_new_tokens} new tokens, {args.dtype}, {dev_name}")
    print(f"{'what':<7} {'method':<8} {'batch':>5} {'rate':>12}  unit")
    for r in rows:
        rate, unit = (r["tokens_per_s"], "tokens/s") if r["what"] == "decode" else (r["steps_per_s"], "steps/s")
        print(f"{r['what']:<7} {r['method']:<8} {r['batch']:>5} {rate:>12.2f}  {unit}")
    if args.out:
        write_json(args.out, {"device": dev_name, "settings": {k: v for k, v in vars(args).items()
                                                              if not k.startswith("_")}, "rows": rows})
    return 0
