"""One logging setup for every entry point (CLI, Snakemake rules, tests)."""

from __future__ import annotations

import logging
import os


def setup_logging(level: int = logging.INFO) -> None:
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format=fmt, datefmt="%H:%M:%S")
    root.setLevel(level)
    # transformers / datasets are chatty at INFO; keep our own logs readable
    for name in ("transformers", "datasets", "huggingface_hub", "urllib3", "filelock", "matplotlib"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
