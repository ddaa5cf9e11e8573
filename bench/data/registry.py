"""Data set name -> loader, for `bench prepare` (one place that knows every training and prompt set)."""

from __future__ import annotations

from collections.abc import Callable

from bench.data.amazon_polarity import load_amazon_polarity
from bench.data.sources import Records
from bench.data.sst2 import load_sst2_training
from bench.data.toxicity import DATASETS as TOXICITY_DATASETS
from bench.data.toxicity import load_toxicity

# training data set -> (attribute its labels are about, loader(source, split, **options))
TRAIN_DATASETS: dict[str, tuple[str, Callable[..., Records]]] = {
    **{
        name: ("toxicity", (lambda n: lambda src, split, **kw: load_toxicity(src, n, split=split, **kw))(name))
        for name in TOXICITY_DATASETS
    },
    "sst2": ("positive", lambda src, split, **kw: load_sst2_training(src, split)),
    "amazon-polarity": ("positive", lambda src, split, **kw: load_amazon_polarity(src, split)),
}

PROMPT_DATASETS = ("rtp", "sentiment")
