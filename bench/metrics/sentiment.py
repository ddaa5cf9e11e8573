"""Sentiment scorers besides the offline TF-IDF model: a HF text-classification model (the papers'
DistilBERT SST-2 when online, or any local folder) and VADER as a rule-based second opinion."""

from __future__ import annotations

import logging
from pathlib import Path

from bench.errors import ModelError
from bench.metrics.base import Scorer, file_digest, package_version

log = logging.getLogger(__name__)

PAPER_SENTIMENT_MODEL = "distilbert-base-uncased-finetuned-sst-2-english"


class VaderScorer(Scorer):
    """(compound + 1) / 2, so 0.5 is VADER's neutral point and `>= 0.5` means non-negative."""

    attribute = "positive"
    batch_size = 512

    def __init__(self) -> None:
        super().__init__()
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.analyzer = SentimentIntensityAnalyzer()
        self.name = "vader"
        self.version = f"vaderSentiment=={package_version('vaderSentiment')}"

    def _score(self, texts):
        return [(self.analyzer.polarity_scores(t)["compound"] + 1.0) / 2.0 for t in texts]


class HFSentimentScorer(Scorer):
    """P(positive label) of a sequence classifier; the positive class is found from `id2label`."""

    attribute = "positive"
    batch_size = 32

    def __init__(self, model: str = PAPER_SENTIMENT_MODEL, device: str = "cpu", max_length: int = 512) -> None:
        super().__init__()
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.torch = torch
        self.device = torch.device(device)
        self.max_length = max_length
        from bench.models.loading import pretrained_source

        src, pin = pretrained_source(model)  # `id@rev`: that revision (bench.utils.hub)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(src, **pin)
            self.model = AutoModelForSequenceClassification.from_pretrained(src, **pin).to(self.device).eval()
        except OSError as exc:
            raise ModelError(
                f"sentiment model '{model}': cannot load ({exc}); offline use tfidf-sst2:PATH or vader"
            ) from exc
        labels = {int(i): str(name).lower() for i, name in self.model.config.id2label.items()}
        pos = [i for i, name in labels.items() if name in ("positive", "pos", "label_1")]
        if len(labels) == 2 and not pos:
            pos = [1]
        if len(pos) != 1:
            raise ModelError(f"sentiment model '{model}': cannot tell the positive class from id2label={labels}")
        self.pos = pos[0]
        self.name = f"hf:{Path(model).name if Path(model).exists() else model}"
        self.version = f"transformers=={package_version('transformers')}/{model_revision(model)}"

    def _score(self, texts):
        with self.torch.no_grad():
            enc = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length)
            logits = self.model(**{k: v.to(self.device) for k, v in enc.items()}).logits.float()
            return self.torch.softmax(logits, -1)[:, self.pos].cpu().tolist()


def model_revision(model: str) -> str:
    """What the weights are: the hub snapshot's commit, or a local folder's weight-file digest.

    (transformers 5 no longer sets `config._commit_hash`; the score cache is keyed by this, so it must change
    when the weights do.)
    """
    folder = Path(model).expanduser()
    if folder.is_dir():
        weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
        return f"folder-{file_digest(weights[0])}" if weights else "folder"
    from huggingface_hub import try_to_load_from_cache

    from bench.utils.hub import split_revision

    repo, rev = split_revision(model)
    found = try_to_load_from_cache(repo, "config.json", revision=rev)
    return Path(found).parent.name if isinstance(found, str) else "unknown-revision"
