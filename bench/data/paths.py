"""Where relative data sources resolve: the project's own `data/`, then `$BENCH_DATA_DIR`, then the cwd.

The repository ships (compressed, with provenance: `data/README.md`) every file its embedded default and its
tests read, so a fresh clone needs nothing beside it. `$BENCH_DATA_DIR` adds a folder of your own files.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DATA = REPO_ROOT / "data"


def search_roots(extra: str | os.PathLike | None = None) -> list[Path]:
    """The folders a relative source is looked up in, in order (an explicit `extra` folder first)."""
    roots = [Path(extra).expanduser()] if extra else []
    roots.append(SHIPPED_DATA)
    env = os.environ.get("BENCH_DATA_DIR")
    if env:
        roots.append(Path(env).expanduser())
    roots.append(Path.cwd())
    return roots


def data_dir() -> Path:
    """The shipped data folder (what error messages point users to)."""
    return SHIPPED_DATA
