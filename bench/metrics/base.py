"""The one scorer interface: a named, versioned function from texts to one float per text.

`name` + `version` identify what a number means (they key the score cache and are written into every
score file), so a version must change whenever the scorer's outputs can change (package version, weights hash).
A scorer returns NaN for a text it could not score (e.g. a failed API request), never a made-up 0.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Sequence
from pathlib import Path


class Scorer:
    """Base class; subclasses set `name`, `version`, `attribute` and implement `_score`."""

    name: str = "scorer"
    version: str = "0"
    attribute: str = "toxicity"  # what the score is the probability of: "toxicity" or "positive"
    batch_size: int = 64

    def __init__(self) -> None:
        self.calls = 0  # number of `score` calls that reached the underlying model (the cache test counts them)
        self.texts_scored = 0

    def score(self, texts: Sequence[str]) -> list[float]:
        """Scores in [0, 1] (NaN where a text could not be scored), one per text, same order."""
        texts = list(texts)
        if not texts:
            return []
        self.calls += 1
        self.texts_scored += len(texts)
        out = [float(x) for x in self._score(texts)]
        if len(out) != len(texts):
            raise RuntimeError(f"scorer {self.name}: returned {len(out)} scores for {len(texts)} texts")
        return out

    def _score(self, texts: list[str]) -> Sequence[float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "attribute": self.attribute}


def package_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def file_digest(path: str | Path, n: int = 16) -> str:
    """Short sha256 of a file: a local checkpoint's version is its content, not its name."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:n]
