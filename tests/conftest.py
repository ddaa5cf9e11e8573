"""Shared fixtures: tiny real-tokenizer models, the data the repository ships, single-threaded torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(int(os.environ.get("BENCH_TEST_THREADS", "1")))

REPO = Path(__file__).resolve().parents[1]

# A 2-layer random GPT-2 with the real GPT-2 BPE tokenizer: fast, and tokenization is real.
TINY_GPT2 = "random:tiny-gpt2?n_layer=2&n_embd=64&n_head=2&seed=0"


@pytest.fixture(scope="session")
def tiny_spec() -> str:
    return TINY_GPT2


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The data the repository ships (`data/`): a missing folder is a failure, never a skip."""
    from bench.data.paths import SHIPPED_DATA

    assert SHIPPED_DATA == REPO / "data" and SHIPPED_DATA.is_dir(), f"shipped data folder missing: {SHIPPED_DATA}"
    return SHIPPED_DATA
