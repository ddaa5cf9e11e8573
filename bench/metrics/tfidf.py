"""Offline sentiment: TF-IDF + logistic regression trained on SST-2, stored as plain JSON (never pickle).

The file holds the vectorizer settings, the vocabulary in column order, the idf weights and the linear
model; `predict_proba` recomputes tf-idf by hand (counts -> optional sublinear tf -> x idf -> L2 norm),
so loading it runs no code from the file and does not depend on the scikit-learn version that fitted it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.errors import DataError, ModelError
from bench.metrics.base import Scorer

log = logging.getLogger(__name__)

FORMAT = "bench-tfidf-logreg/1"


@dataclass
class TfidfConfig:
    ngram_max: int = 2
    min_df: int = 2
    sublinear_tf: bool = True
    C: float = 4.0
    max_iter: int = 2000
    lowercase: bool = True
    token_pattern: str = r"(?u)\b\w\w+\b|[!?]"


def fit_tfidf_logreg(texts: Sequence[str], labels: Sequence[int], cfg: TfidfConfig) -> dict:
    """Fit with scikit-learn and return the JSON-able model dict."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(
        ngram_range=(1, cfg.ngram_max),
        min_df=cfg.min_df,
        sublinear_tf=cfg.sublinear_tf,
        lowercase=cfg.lowercase,
        token_pattern=cfg.token_pattern,
        norm="l2",
        smooth_idf=True,
    )
    x = vec.fit_transform(list(texts))
    clf = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter)
    clf.fit(x, np.asarray(labels))
    if list(clf.classes_) != [0, 1]:
        raise DataError(f"sentiment labels must be 0/1, got classes {list(clf.classes_)}")
    vocab = [None] * len(vec.vocabulary_)
    for term, idx in vec.vocabulary_.items():
        vocab[idx] = term
    return {
        "format": FORMAT,
        "config": asdict(cfg),
        "vocabulary": vocab,
        "idf": vec.idf_.tolist(),
        "coef": clf.coef_[0].tolist(),
        "intercept": float(clf.intercept_[0]),
    }


class TfidfModel:
    """Inference from the JSON dict alone."""

    def __init__(self, obj: dict, source: str = "<dict>") -> None:
        if obj.get("format") != FORMAT:
            raise ModelError(f"{source}: format '{obj.get('format')}', expected '{FORMAT}' (from bench fit-sentiment)")
        from sklearn.feature_extraction.text import CountVectorizer

        self.cfg = TfidfConfig(**obj["config"])
        vocab = obj["vocabulary"]
        self.vec = CountVectorizer(
            ngram_range=(1, self.cfg.ngram_max),
            lowercase=self.cfg.lowercase,
            token_pattern=self.cfg.token_pattern,
            vocabulary={t: i for i, t in enumerate(vocab)},
        )
        self.idf = np.asarray(obj["idf"], dtype=np.float64)
        self.coef = np.asarray(obj["coef"], dtype=np.float64)
        self.intercept = float(obj["intercept"])
        if not (len(vocab) == len(self.idf) == len(self.coef)):
            raise ModelError(f"{source}: vocabulary/idf/coef lengths differ")
        # what the model computes, not where it was trained from: the file also records its training source,
        # an absolute path that differs per clone and would make two identical models two cache keys
        content = {k: obj[k] for k in ("format", "config", "vocabulary", "idf", "coef", "intercept")}
        self.digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8")).hexdigest()[:16]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        x = self.vec.transform(list(texts)).astype(np.float64).tocsr()
        if self.cfg.sublinear_tf:
            x.data = np.log(x.data) + 1.0
        x = x.multiply(self.idf[None, :]).tocsr()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        logits = np.asarray(x @ self.coef).ravel() / norms + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))


def load_tfidf(path: str | Path) -> TfidfModel:
    path = Path(path)
    if not path.exists():
        raise ModelError(f"sentiment model {path}: not found (create it with `bench fit-sentiment`)")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"sentiment model {path}: line {exc.lineno}: invalid JSON") from exc
    return TfidfModel(obj, str(path))


class TfidfSentimentScorer(Scorer):
    """P(positive) from the offline SST-2 TF-IDF model."""

    attribute = "positive"
    batch_size = 2048

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.model = load_tfidf(path)
        self.name = "tfidf-sst2"
        self.version = f"model-{self.model.digest}"

    def _score(self, texts):
        return self.model.predict_proba(texts).tolist()
