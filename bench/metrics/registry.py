"""Pick a scorer by its spec string (CLI flags, configs).

profanity-check                         offline toxicity (alt-profanity-check, predict_prob)
jigsaw-bilstm-toxblock | jigsaw-bilstm-tcc  offline Jigsaw-2018 BiLSTMs (tox-block / toxic-comment-classifier
                                        weights, sha256-pinned, our numpy inference: bench.metrics.bilstm)
detoxify:original | detoxify:PATH.ckpt  Detoxify (hub variant name, or a local checkpoint file)
perspective                             Perspective API (key from $PERSPECTIVE_API_KEY only)
tfidf-sst2:PATH.json                    offline TF-IDF + logistic regression sentiment (`bench fit-sentiment`)
vader                                   VADER sentiment, a second opinion ((compound + 1) / 2)
hf:MODEL                                a Hugging Face text-classification model (hub id or folder)
"""

from __future__ import annotations

from bench.errors import ConfigError
from bench.metrics.base import Scorer

TOXICITY_SPECS = (
    "profanity-check",
    "jigsaw-bilstm-toxblock",
    "jigsaw-bilstm-tcc",
    "detoxify:<variant|path>",
    "perspective",
)
SENTIMENT_SPECS = ("tfidf-sst2:<path>", "vader", "hf:<model>")


def build_scorer(spec: str, device: str = "cpu", batch_size: int | None = None) -> Scorer:
    spec = str(spec).strip()
    kind, _, arg = spec.partition(":")
    scorer: Scorer
    if kind == "profanity-check" and not arg:
        from bench.metrics.toxicity import ProfanityCheckScorer

        scorer = ProfanityCheckScorer()
    elif kind.startswith("jigsaw-bilstm-") and not arg:
        from bench.metrics.bilstm import JUDGES, BiLSTMScorer

        if kind not in JUDGES:
            raise ConfigError(f"scorer '{spec}': unknown BiLSTM judge; expected one of {', '.join(sorted(JUDGES))}")
        scorer = BiLSTMScorer(kind)
    elif kind == "detoxify":
        from bench.metrics.toxicity import DetoxifyScorer

        scorer = DetoxifyScorer(arg or "original", device=device)
    elif kind == "perspective" and not arg:
        from bench.metrics.perspective import PerspectiveScorer

        scorer = PerspectiveScorer()
    elif kind == "tfidf-sst2" and arg:
        from bench.metrics.tfidf import TfidfSentimentScorer

        scorer = TfidfSentimentScorer(arg)
    elif kind == "vader" and not arg:
        from bench.metrics.sentiment import VaderScorer

        scorer = VaderScorer()
    elif kind == "hf" and arg:
        from bench.metrics.sentiment import HFSentimentScorer

        scorer = HFSentimentScorer(arg, device=device)
    else:
        raise ConfigError(f"scorer '{spec}': unknown; expected one of {', '.join(TOXICITY_SPECS + SENTIMENT_SPECS)}")
    if batch_size:
        scorer.batch_size = int(batch_size)
    return scorer
