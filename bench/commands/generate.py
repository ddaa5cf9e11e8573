"""`bench generate`: plain (no --reward) or reward-guided sampling of continuations to a JSONL file.

Resumable: every finished batch is appended to `<out>.partial.jsonl` (next to its settings in
`<out>.partial.meta.json`); a restart skips the prompts found there. What is resumed is checked: the
settings, the identity of the models (the reward folder's weights digest) and, per record, the sha256 of
the prompt text; whatever differs is generated again, with a warning naming what changed. Samples are
seeded per prompt id, so the final file has the same bytes whether or not the run was interrupted.
The final JSONL and `<out>.meta.json` appear together (both renamed at the end); the partial files are then
removed. Each finished batch on disk is a `generate-batch` progress point (`bench.utils.testhooks`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import platform
from pathlib import Path

from bench.decoding.processors import REWARD_RULES
from bench.errors import ConfigError, DataError
from bench.utils.argtypes import non_negative_float, positive_int

log = logging.getLogger(__name__)

PROMPT_FIELDS = ("id", "prompt")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True, help="base LM spec (hub id, folder, embedded:..., random:...)")
    p.add_argument("--reward", default=None, help="reward-model folder; plain top-k sampling when absent")
    p.add_argument("--prompts", required=True, help="prompts JSONL ({id, prompt, ...})")
    p.add_argument("--out", required=True, help="output generations JSONL")
    p.add_argument("--beta", type=non_negative_float, default=0.0, help="reward weight (finite, >= 0)")
    p.add_argument("--top-k", type=int, default=20, help="candidates kept per step (RAD k)")
    p.add_argument(
        "--direction",
        choices=["away", "toward"],
        default="away",
        help="steer away from (1-r) or toward (r) the attribute",
    )
    p.add_argument("--attribute", default=None, help="reward output that steers (default: the model's steer_attribute)")
    p.add_argument(
        "--reward-rule",
        choices=REWARD_RULES,
        default="clamp",
        help="raw reward -> [0, 1]: clamp (the papers' rule), centered (minus the step's mean over the "
        "k candidates, + 0.5, clamped) or sigmoid; another rule names the method "
        "<parametrization>+<rule> (docs/challenging.md)",
    )
    p.add_argument("--num-samples", type=positive_int, default=25)
    p.add_argument("--max-new-tokens", type=positive_int, default=20)
    p.add_argument("--batch-size", type=positive_int, default=8, help="prompts per batch (x num-samples rows)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-prompts", type=positive_int, default=None, help="only the first N prompts (default: all)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--task", default=None, help="task label stored in the meta file (e.g. detox, sentiment)")


def read_prompts(path: str | os.PathLike, max_prompts: int | None) -> list[dict]:
    """Prompt records; a file `bench prepare` wrote (a `.source.json` sidecar next to it) must still have the
    content digest recorded there. A hand-made prompt file (no sidecar) is read as it is."""
    from bench.utils.io import DIGEST_KEY, iter_jsonl, read_json, verify_digest

    sidecar = Path(f"{path}.source.json")
    if sidecar.is_file() and Path(path).is_file():
        verify_digest(path, read_json(sidecar, expect=dict).get(DIGEST_KEY), sidecar)
    records, seen = [], set()
    for lineno, rec in iter_jsonl(path):
        for key in PROMPT_FIELDS:
            if key not in rec:
                raise DataError(f"{path}: line {lineno}: missing key '{key}'; expected {{id, prompt, ...}}")
        if not isinstance(rec["prompt"], str) or not rec["prompt"].strip():
            got = "whitespace only" if isinstance(rec["prompt"], str) and rec["prompt"] else json.dumps(rec["prompt"])
            raise DataError(
                f"{path}: line {lineno}: 'prompt' is {got}; expected a non-empty string (a blank prompt "
                "conditions the model on nothing)"
            )
        if isinstance(rec["id"], bool) or not isinstance(rec["id"], (str, int)) or rec["id"] == "":
            raise DataError(
                f"{path}: line {lineno}: 'id' = {json.dumps(rec['id'])}: expected a non-empty string or an integer"
            )
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


def prompt_digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _read_partial(path: Path, settings: dict, prompts: list[dict]) -> dict[str, dict]:
    """Completed records of an interrupted run, kept only where settings, models and prompt text are the same
    as now (a torn last line is dropped); every reason to regenerate is logged as a warning."""
    meta_path = Path(f"{path}.meta.json")
    if not path.exists() or not meta_path.exists():
        return {}
    try:
        old = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        old = None
    if old != settings:
        if isinstance(old, dict):
            changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            what = ", ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in changed)
        else:
            what = f"{meta_path} unreadable"
        log.warning("%s: written with other settings (%s); starting over", path, what)
        return {}
    texts = {r["id"]: prompt_digest(r["prompt"]) for r in prompts}
    done: dict[str, dict] = {}
    edited: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break  # the line being written when the run was killed
            if not isinstance(rec, dict) or "id" not in rec:
                break
            if rec["id"] in texts and rec.get("prompt_sha256") != texts[rec["id"]]:
                edited.append(str(rec["id"]))
                continue
            done[rec["id"]] = rec
    if edited:
        log.warning(
            "%s: the prompt text of %d resumed record(s) changed since they were generated (%s); generating them again",
            path,
            len(edited),
            ", ".join(edited[:5]) + (" ..." if len(edited) > 5 else ""),
        )
    return done


def _settings(args: argparse.Namespace, method: str, beta: float) -> dict:
    rule = {"reward_rule": args.reward_rule} if args.reward and args.reward_rule != "clamp" else {}  # off: as before
    return {
        **rule,
        "method": method,
        "reward_model": str(args.reward) if args.reward else None,
        "beta": beta,
        "top_k": args.top_k,
        "direction": args.direction,
        "attribute": args.attribute,
        "num_samples": args.num_samples,
        "max_new_tokens": args.max_new_tokens,
        "seed": args.seed,
        "base": args.base,
        "task": args.task,
        "prompts": str(args.prompts),
        "max_prompts": args.max_prompts,
        "dtype": args.dtype,
        "reward_digest": _reward_digest(args.reward),
        "base_digest": _base_digest(args.base),
    }


def _reward_digest(folder: str | None) -> str | None:
    """The reward model's identity: its config and weights, not its folder name."""
    if not folder:
        return None
    from bench.utils.io import files_digest

    f = Path(folder)
    return files_digest(f / "reward_config.json", f / "model.safetensors")


def _base_digest(spec: str) -> str | None:
    """A local base-model folder's identity (config + weights); specs that name fixed weights need none."""
    from bench.utils.io import files_digest

    p = Path(spec).expanduser()
    if not p.is_dir():
        return None
    return files_digest(*sorted(p.glob("*.json")), *sorted(p.glob("*.safetensors")), *sorted(p.glob("*.bin")))


def run(args: argparse.Namespace) -> int:
    import torch
    import transformers

    from bench.models.loading import load_causal_lm, load_tokenizer, model_commit, resolve_device
    from bench.rewards.registry import load_reward_model
    from bench.utils.io import check_writable

    out = Path(args.out)
    partial = Path(f"{out}.partial.jsonl")
    check_writable(out, f"{out}.meta.json", partial, f"{partial}.meta.json")
    prompts = read_prompts(args.prompts, args.max_prompts)
    device = resolve_device(args.device)
    base = load_causal_lm(args.base, dtype=args.dtype, device=str(device))
    tok = load_tokenizer(args.base)
    reward = None
    method, beta = "plain", float(args.beta)
    if not (math.isfinite(beta) and beta >= 0):
        raise ConfigError(f"--beta {beta}: expected a finite number >= 0")
    if args.reward:
        reward = load_reward_model(args.reward, device=str(device))
        method = reward.config.parametrization
        if args.reward_rule != "clamp":
            method = f"{method}+{args.reward_rule}"  # its own rows in the tables, beside the reference rule
        if args.attribute is None:
            args.attribute = reward.config.steer_attribute
    elif beta:
        log.warning("--beta %s ignored: no --reward given, plain top-k sampling", beta)
        beta = 0.0
    settings = _settings(args, method, beta)

    from bench.utils.io import created_folders

    with created_folders(out, partial):
        done = _read_partial(partial, settings, prompts)
        todo = [r for r in prompts if r["id"] not in done]
        if done:
            log.info("resuming: %d of %d prompts already in %s", len(prompts) - len(todo), len(prompts), partial)
        try:
            if not done:
                _start_partial(partial, settings)
            stats = _generate_into(partial, done, todo, base, tok, reward, beta, args)
        except BaseException:
            # nothing finished (or the disk filled before the first batch): leave nothing a rerun would resume
            if not done and (not partial.exists() or partial.stat().st_size == 0):
                partial.unlink(missing_ok=True)
                Path(f"{partial}.meta.json").unlink(missing_ok=True)
            raise
        meta = dict(settings)
        meta.update(stats)
        meta.update(
            n_prompts=len(prompts),
            resumed_prompts=len(prompts) - len(todo),
            batch_size=args.batch_size,
            device=str(device),
            torch=torch.__version__,
            transformers=transformers.__version__,
            python=platform.python_version(),
            out=str(out),
            base_commit=model_commit(args.base),
        )
        _write_outputs(out, prompts, done, meta)
    partial.unlink(missing_ok=True)
    Path(f"{partial}.meta.json").unlink(missing_ok=True)
    log.info(
        "wrote %d prompts x %d samples to %s (%.1f tokens/s)",
        len(prompts),
        args.num_samples,
        out,
        meta.get("tokens_per_s") or float("nan"),
    )
    return 0


def _start_partial(partial: Path, settings: dict) -> None:
    from bench.utils.io import write_json

    write_json(f"{partial}.meta.json", settings)  # first: a partial file is never without its settings
    try:
        partial.write_bytes(b"")
    except OSError as exc:
        raise DataError(f"{partial}: cannot write ({exc.strerror or exc})") from exc


def _write_outputs(out: Path, prompts: list[dict], done: dict, meta: dict) -> None:
    """The generations and their meta file appear together (two temporaries renamed at the end)."""
    from bench.utils.io import DIGEST_KEY, atomic_outputs, dumps_finite, sha256_file

    with atomic_outputs(out, f"{out}.meta.json") as (tmp_out, tmp_meta):
        with open(tmp_out, "w", encoding="utf-8") as fh:
            for lineno, rec in enumerate(prompts, start=1):
                g = done[rec["id"]]
                row = {"id": rec["id"], "prompt": rec["prompt"], "continuations": g["continuations"]}
                row.update({k: v for k, v in rec.items() if k not in row})
                fh.write(dumps_finite(row, out, line=lineno, ensure_ascii=False) + "\n")
        meta = dict(meta, **{DIGEST_KEY: sha256_file(tmp_out)})  # `bench score` verifies it
        tmp_meta.write_text(
            dumps_finite(meta, f"{out}.meta.json", indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
        )


def _generate_into(
    partial: Path, done: dict, todo: list[dict], base, tok, reward, beta: float, args: argparse.Namespace
) -> dict:
    """Generate the prompts not yet done into `done`, appending each finished batch to the partial file
    (fsynced); returns the run's token counts and timings."""
    from bench.decoding.generate import generate_continuations
    from bench.utils.testhooks import progress_point

    texts = {r["id"]: r["prompt"] for r in todo}
    with open(partial, "ab", buffering=0) as fh:

        def on_batch(_start: int, recs: list[dict]) -> None:
            data = "".join(
                json.dumps(dict(rec, prompt_sha256=prompt_digest(texts[rec["id"]])), ensure_ascii=False) + "\n"
                for rec in recs
            ).encode("utf-8")
            end = os.fstat(fh.fileno()).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[fh.write(view) :]
                os.fsync(fh.fileno())
            except OSError as exc:  # disk full, file-size limit: cut the torn batch so the file holds whole ones
                with contextlib.suppress(OSError):
                    os.ftruncate(fh.fileno(), end)
                kept = "; the batches finished before it are kept for a rerun" if end else ""
                raise DataError(f"{partial}: cannot write ({exc.strerror or exc}){kept}") from exc
            progress_point("generate-batch")

        stats: dict = {}
        if todo:
            generated = generate_continuations(
                base,
                tok,
                [r["prompt"] for r in todo],
                reward,
                top_k=args.top_k,
                beta=beta,
                direction=args.direction,
                num_samples=args.num_samples,
                max_new_tokens=args.max_new_tokens,
                batch_size=args.batch_size,
                seed=args.seed,
                attribute=args.attribute,
                keys=[r["id"] for r in todo],
                on_batch=on_batch,
                stats=stats,
                reward_rule=args.reward_rule,
            )
            done.update({g["id"]: g for g in generated})

    return stats
