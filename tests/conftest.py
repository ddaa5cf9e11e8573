"""Shared fixtures: tiny real-tokenizer models, the offline data mirror, single-threaded torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(int(os.environ.get("BENCH_TEST_THREADS", "1")))

REPO = Path(__file__).resolve().parents[1]

# A 2-layer random GPT-2 with the real GPT-2 BPE tokenizer: fast, and tokenization is real.
TINY_GPT2 = "random:tiny-gpt2?n_layer=2&n_embd=64&n_head=2&seed=0"


def shared_data_dir() -> Path | None:
    from bench.data.paths import data_dir

    d = data_dir()
    return d if d is not None and d.exists() else None


@pytest.fixture(scope="session")
def tiny_spec() -> str:
    return TINY_GPT2


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("offline data mirror not found (set BENCH_DATA_DIR or provide ../shared/data)")
    return d
