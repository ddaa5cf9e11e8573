"""`bench hub-ids`: the Hugging Face hub ids (and Detoxify checkpoint URLs) a pipeline config needs, so a cluster
user can fill the caches on a login node with internet and run with `HF_HUB_OFFLINE=1` on compute nodes.

    bench hub-ids --configfile config/paper.yaml             # one line per id: KIND<TAB>ID[@REVISION]
    bench hub-ids --configfile config/paper.yaml --commands  # the `hf download` lines to run instead
    bench hub-ids --configfile config/paper.yaml --fetch     # download them (needs internet)

A pinned id (`gpt2-large@<commit>`, see bench.utils.hub) is fetched at exactly that revision (`--revision`),
which is the snapshot the offline run then resolves; an unpinned one at the repo's default branch.

Config files merge like Snakemake's `--configfile A B` (later mappings update earlier ones, lists replace).
Model specs that are not hub ids (`random:`, `embedded:`, existing folders) and local data files are skipped.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.config import load_config
from bench.utils.hub import split_revision

log = logging.getLogger(__name__)

# Detoxify variant -> the transformers id its checkpoint's `arch.args.model_type` names (read by Detoxify and by
# bench.metrics.toxicity to build the model and tokenizer); the checkpoint itself comes from detoxify's MODEL_URLS.
DETOXIFY_BACKBONES = {
    "original": "bert-base-uncased",
    "unbiased": "roberta-base",
    "multilingual": "xlm-roberta-base",
    "original-small": "albert-base-v2",
    "unbiased-small": "albert-base-v2",
}
# what a model snapshot needs (skips the TF / Flax / ONNX / .bin copies many repos also carry)
MODEL_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--configfile",
        nargs="+",
        required=True,
        type=Path,
        help="config file(s), merged in order like snakemake --configfile",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--commands", action="store_true", help="print the download commands instead of the ids")
    mode.add_argument("--fetch", action="store_true", help="download everything into the caches (needs internet)")


def _is_hub_model(spec: str | None) -> bool:
    if not spec or spec.startswith(("random:", "embedded:")):
        return False
    return not Path(spec).expanduser().exists() and not spec.startswith((".", "/", "~"))


def needed(cfg: dict) -> list[tuple[str, str]]:
    """(kind, id) pairs in first-use order; kind is `model`, `dataset` or `url` (a torch hub checkpoint)."""
    from bench.data import rtp
    from bench.data.sources import resolve_source

    out: list[tuple[str, str]] = []

    def add(kind: str, ident: str) -> None:
        if (kind, ident) not in out:
            out.append((kind, ident))

    m, s = cfg["models"], cfg["scoring"]
    for spec in (m["base"], m["reward_backbone"], s.get("fluency_model")):
        if _is_hub_model(spec):
            add("model", spec)
    for section in ("latency", "rank"):
        sub = cfg.get(section) or {}
        if sub.get("enabled", True):
            for key in ("base", "reward"):
                if _is_hub_model(sub.get(key)):
                    add("model", sub[key])
    for spec in (s.get("toxicity_scorer"), s.get("sentiment_scorer"), *(s.get("extra_toxicity_scorers") or [])):
        kind, _, arg = str(spec or "").partition(":")
        if kind == "hf" and _is_hub_model(arg):
            add("model", arg)
        elif kind == "detoxify" and (arg or "original") in DETOXIFY_BACKBONES:
            from detoxify.detoxify import MODEL_URLS

            variant = arg or "original"
            add("url", MODEL_URLS[variant])
            add("model", DETOXIFY_BACKBONES[variant])
    for task in cfg["tasks"].values():
        if not task.get("enabled", True):
            continue
        sources = [t["source"] for t in task["train"]]
        prompts = task["prompts"]["source"]
        sources.append(rtp.paper_source() if prompts == rtp.PAPER_SET else prompts)
        sources += [p["source"] for p in task.get("prompt_sets", {}).values()]  # e.g. the challenging prompts
        for src in sources:
            try:
                res = resolve_source(src, extra_root=cfg.get("data_dir"))  # as the Snakefile resolves it
            except Exception:
                continue  # a missing local file: the pipeline itself reports it
            if res.kind == "hub":
                add("dataset", res.value)
    return out


def commands(items: list[tuple[str, str]]) -> list[str]:
    lines = []
    for kind, spec in items:
        ident, rev = split_revision(spec) if kind != "url" else (spec, None)
        pin = f" --revision {rev}" if rev else ""
        if kind == "model":
            lines.append(f"hf download {ident}{pin} --include " + " ".join(f"'{p}'" for p in MODEL_PATTERNS))
        elif kind == "dataset":
            lines.append(f"hf download --repo-type dataset {ident}{pin}")
        else:
            lines.append(
                f"python -c \"import torch; torch.hub.download_url_to_file('{ident}', "
                f"torch.hub.get_dir() + '/checkpoints/{ident.rsplit('/', 1)[1]}')\""
            )
    return lines


def fetch(items: list[tuple[str, str]]) -> None:
    import os

    import torch
    from huggingface_hub import snapshot_download

    for kind, ident in items:
        log.info("fetching %s %s", kind, ident)
        if kind in ("model", "dataset"):
            repo, rev = split_revision(ident)
            path = snapshot_download(
                repo, repo_type=kind, revision=rev, allow_patterns=MODEL_PATTERNS if kind == "model" else None
            )
            log.info("%s %s: commit %s", kind, ident, Path(path).name)
        else:
            dest = Path(torch.hub.get_dir()) / "checkpoints" / ident.rsplit("/", 1)[1]
            if not dest.exists():
                os.makedirs(dest.parent, exist_ok=True)
                torch.hub.download_url_to_file(ident, str(dest))


def run(args: argparse.Namespace) -> int:
    items = needed(load_config(*args.configfile))
    if args.fetch:
        fetch(items)
        print(f"fetched {len(items)} items")
    elif args.commands:
        print("\n".join(commands(items)))
    else:
        print("\n".join(f"{k}\t{i}" for k, i in items))
    return 0
