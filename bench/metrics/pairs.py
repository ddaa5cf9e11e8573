"""Adapter that lets the score cache hold perplexities: the cached 'text' is prompt + U+001F + continuation,
and the scorer's version names the LM, so a PPL is reused only for the same LM and the same (prompt, text)."""

from __future__ import annotations

from pathlib import Path

from bench.metrics.base import Scorer, package_version
from bench.metrics.fluency import PerplexityScorer

SEP = "\x1f"


class CachedPerplexity(Scorer):
    attribute = "ppl"

    def __init__(self, ppl: PerplexityScorer, model_tag: str) -> None:
        super().__init__()
        self.ppl = ppl
        self.batch_size = max(64, ppl.cfg.batch_size * 8)
        self.name = f"ppl:{model_tag}"
        # pad<m>: the batching scheme (fluency module docstring); PPLs cached by the older batching differ in the
        # 7th digit, and mixing them would make a rerun's tables differ from a fresh run's
        self.version = (
            f"transformers=={package_version('transformers')}/{ppl.cfg.dtype}/maxlen{ppl.max_length}"
            f"/pad{ppl.cfg.pad_multiple}"
        )
        folder = Path(model_tag).expanduser()
        if folder.is_dir():  # a local model's scores are reused only for the same weights, whatever its path
            from bench.utils.io import files_digest

            self.version += "/" + files_digest(
                *sorted(folder.glob("*.json")), *sorted(folder.glob("*.safetensors")), *sorted(folder.glob("*.bin"))
            )

    @staticmethod
    def key(prompt: str, continuation: str) -> str:
        return prompt + SEP + continuation

    def _score(self, texts):
        pairs = [t.split(SEP, 1) for t in texts]
        return self.ppl.score([p for p, _ in pairs], [c for _, c in pairs])
