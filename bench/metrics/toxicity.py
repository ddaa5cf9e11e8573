"""Toxicity scorers: alt-profanity-check and Detoxify (the Jigsaw-2018 BiLSTM judges: `bench.metrics.bilstm`).

Detoxify checkpoints are dicts `{"config": {"arch": {"args": {model_type, model_name, tokenizer_name,
num_classes}}, "dataset": {"args": {"classes": [...]}}}, "state_dict": {...}}`. We read them with
`torch.load(weights_only=True)` (plain containers + tensors), never by unpickling arbitrary objects, and build
the transformers model ourselves so a local checkpoint plus a local config/tokenizer folder works offline.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from urllib.parse import parse_qsl

import torch

from bench.errors import ModelError
from bench.metrics.base import Scorer, file_digest, package_version

log = logging.getLogger(__name__)

# Detoxify's class names -> the names its outputs use
_CLASS_RENAME = {"toxic": "toxicity", "identity_hate": "identity_attack", "severe_toxic": "severe_toxicity"}


class ProfanityCheckScorer(Scorer):
    """Linear SVM on bag of words (alt-profanity-check), calibrated probability of offensive language."""

    attribute = "toxicity"
    batch_size = 1024

    def __init__(self) -> None:
        super().__init__()
        try:
            from profanity_check import predict_prob
        except ImportError as exc:
            raise ModelError("scorer 'profanity-check' needs: pip install alt-profanity-check") from exc
        self._predict_prob = predict_prob
        self.name = "profanity-check"
        self.version = f"alt-profanity-check=={package_version('alt-profanity-check')}"

    def _score(self, texts):
        return self._predict_prob(texts).tolist()


# full sha256 of official Detoxify releases: a download is verified before it enters the torch.hub cache
# (torch.hub only checks the 8-hex prefix in the name)
DETOXIFY_SHA256 = {
    "toxic_original-c1212f89.ckpt": "c1212f89ac23307ab33932ce29dc446a6e030fb3f384a500890bbe662b7b544a",
}


def _download_pinned(url: str) -> None:
    """Download a pinned release into torch.hub's cache, refusing (and removing) a file whose sha256 differs.
    A file already in the cache (e.g. placed by `bench hub-ids --fetch`) is left to torch.hub's own check."""
    import hashlib
    import os
    import tempfile

    name = Path(url).name
    want = DETOXIFY_SHA256.get(name)
    target = Path(torch.hub.get_dir()) / "checkpoints" / name
    if want is None or target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=target.parent)
    os.close(fd)
    try:
        torch.hub.download_url_to_file(url, tmp, progress=False)
        h = hashlib.sha256()
        with open(tmp, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != want:
            raise ModelError(
                f"detoxify checkpoint {url}: sha256 {h.hexdigest()[:16]}... does not match the pinned "
                f"{want[:16]}...; refusing it"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _hub_checkpoint(variant: str) -> tuple[dict, str]:
    from detoxify.detoxify import MODEL_URLS

    if variant not in MODEL_URLS:
        raise ModelError(f"detoxify variant '{variant}': unknown; expected one of {sorted(MODEL_URLS)} or a .ckpt path")
    url = MODEL_URLS[variant]
    try:
        _download_pinned(url)
        try:
            loaded = torch.hub.load_state_dict_from_url(url, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # an official release that needs full unpickling: allowed only with the file's sha256 prefix
            # (in its name) verified, never for a user-supplied path
            log.warning("detoxify:%s needs weights_only=False; loading the hash-checked official release", variant)
            loaded = torch.hub.load_state_dict_from_url(url, map_location="cpu", weights_only=False, check_hash=True)
    except (pickle.UnpicklingError, ModelError):
        raise
    except Exception as exc:  # offline: say what to do instead
        raise ModelError(
            f"detoxify:{variant}: cannot download {url} ({type(exc).__name__}); offline, pass a local "
            "checkpoint: detoxify:/path/model.ckpt[?config=/folder/with/config+tokenizer]"
        ) from exc
    return loaded, Path(url).name


class DetoxifyScorer(Scorer):
    """Detoxify's `toxicity` head (sigmoid of its logit), from a hub variant name or a local checkpoint."""

    attribute = "toxicity"
    batch_size = 32

    def __init__(self, source: str = "original", device: str = "cpu", max_length: int = 512) -> None:
        super().__init__()
        path_part, _, query = source.partition("?")
        opts = dict(parse_qsl(query))
        self.device = torch.device(device)
        self.max_length = max_length
        path = Path(path_part).expanduser()
        if path.suffix in (".ckpt", ".pt", ".pth") or path.exists():
            if not path.exists():
                raise ModelError(f"detoxify checkpoint {path}: not found")
            try:
                loaded = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise ModelError(f"detoxify checkpoint {path}: cannot load with weights_only=True ({exc})") from exc
            tag = f"ckpt-{file_digest(path)}"
            default_cfg = path.parent if (path.parent / "config.json").exists() else None
        else:
            loaded, tag = _hub_checkpoint(path_part)
            default_cfg = None
        if not isinstance(loaded, dict) or "config" not in loaded or "state_dict" not in loaded:
            raise ModelError(f"detoxify checkpoint {source}: expected a dict with 'config' and 'state_dict'")
        try:
            arch = loaded["config"]["arch"]["args"]
            classes = [_CLASS_RENAME.get(c, c) for c in loaded["config"]["dataset"]["args"]["classes"]]
        except (KeyError, TypeError) as exc:
            raise ModelError(
                f"detoxify checkpoint {source}: missing config key {exc}; "
                "expected config.arch.args and config.dataset.args.classes"
            ) from exc
        if "toxicity" not in classes:
            raise ModelError(f"detoxify checkpoint {source}: no 'toxic'/'toxicity' class in {classes}")
        self.index = classes.index("toxicity")
        cfg_src = opts.get("config") or (str(default_cfg) if default_cfg else arch["model_type"])
        self.model, self.tokenizer = self._build(arch, loaded["state_dict"], cfg_src, source)
        self.name = f"detoxify:{path_part if not path.exists() else path.name}"
        self.version = f"detoxify=={package_version('detoxify')}/{tag}"

    def _build(self, arch: dict, state_dict: dict, cfg_src: str, source: str):
        import transformers

        try:
            model_cls = getattr(transformers, arch["model_name"])
            tok_cls = getattr(transformers, arch["tokenizer_name"])
        except AttributeError as exc:
            raise ModelError(f"detoxify checkpoint {source}: transformers has no {exc.name}") from exc
        local = Path(cfg_src).exists()
        try:
            config = model_cls.config_class.from_pretrained(
                cfg_src, num_labels=int(arch["num_classes"]), local_files_only=local
            )
            tokenizer = tok_cls.from_pretrained(cfg_src, local_files_only=local)
        except OSError as exc:
            raise ModelError(
                f"detoxify checkpoint {source}: cannot load config/tokenizer from '{cfg_src}' ({exc}); "
                "offline, add ?config=/folder/with/config.json+tokenizer"
            ) from exc
        model = model_cls(config)
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
        unexpected = [k for k in unexpected if not k.endswith("position_ids")]  # buffer older versions saved
        if missing or unexpected:
            raise ModelError(
                f"detoxify checkpoint {source}: weights do not fit {arch['model_name']} "
                f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
        return model.to(self.device).eval(), tokenizer

    @torch.no_grad()
    def _score(self, texts):
        enc = self.tokenizer(texts, return_tensors="pt", truncation=True, padding=True, max_length=self.max_length)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        logits = self.model(**enc).logits
        return torch.sigmoid(logits[:, self.index].float()).cpu().tolist()
