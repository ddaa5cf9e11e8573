"""Where the offline data mirror lives: `$BENCH_DATA_DIR`, else `../shared/data` next to the checkout."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path | None:
    env = os.environ.get("BENCH_DATA_DIR")
    if env:
        return Path(env).expanduser()
    for cand in (Path.cwd() / ".." / "shared" / "data", REPO_ROOT.parent / "shared" / "data"):
        if cand.exists():
            return cand.resolve()
    return None
