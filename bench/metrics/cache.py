"""Content-addressed score cache: (scorer name, scorer version, sha256 of text) -> score, in SQLite.

Identical texts are scored once across runs, methods and betas (plain decoding at several betas shares
many continuations; prompts repeat across every run). WAL mode and a busy timeout make it safe for the
two Snakemake jobs that may write at once. NaN (a failed score) is never stored, so it is retried next run.
"""

from __future__ import annotations

import hashlib
import logging
import math
import sqlite3
import time
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from bench.errors import DataError
from bench.metrics.base import Scorer
from bench.utils.testhooks import progress_point

log = logging.getLogger(__name__)

_SCHEMA = """CREATE TABLE IF NOT EXISTS scores (
  scorer TEXT NOT NULL, version TEXT NOT NULL, text_hash TEXT NOT NULL, score REAL NOT NULL,
  PRIMARY KEY (scorer, version, text_hash)) WITHOUT ROWID"""


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ScoreCache:
    """A SQLite file shared by every run; `None` path means an in-memory (per-process) cache."""

    def __init__(self, path: str | Path | None, timeout_s: float = 120.0) -> None:
        self.path = str(path) if path else ":memory:"
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=timeout_s)
        try:
            if path:
                self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute(_SCHEMA)
            self.conn.commit()
            cols = [r[1] for r in self.conn.execute("PRAGMA table_info(scores)")]
        except sqlite3.DatabaseError as exc:  # not SQLite at all ("file is not a database"), or corrupt
            self.conn.close()
            raise DataError(f"{self.path}: not a usable SQLite score cache ({exc}); expected a cache written by "
                            "`bench score --cache`, or a path that does not exist yet") from exc
        if cols != ["scorer", "version", "text_hash", "score"]:
            self.conn.close()
            raise DataError(f"{self.path}: SQLite file without the score cache's table (columns {cols}); "
                            "expected a cache written by `bench score --cache`")

    def get_many(self, scorer: str, version: str, hashes: Sequence[str]) -> dict[str, float]:
        found: dict[str, float] = {}
        hashes = list(hashes)
        for i in range(0, len(hashes), 500):
            chunk = hashes[i:i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT text_hash, score FROM scores WHERE scorer=? AND version=? AND text_hash IN ({marks})",
                (scorer, version, *chunk),
            ).fetchall()
            found.update(rows)
        return found

    def put_many(self, scorer: str, version: str, items: dict[str, float]) -> None:
        rows = [(scorer, version, h, float(s)) for h, s in items.items() if not math.isnan(float(s))]
        if not rows:
            return
        with self.conn:  # one transaction; the busy timeout waits out a concurrent writer
            self.conn.executemany("INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?)", rows)

    def __bool__(self) -> bool:  # an empty cache is still a cache (len() would make it falsy)
        return True

    def __len__(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def close(self) -> None:
        self.conn.close()


def score_texts(scorer: Scorer, texts: Sequence[str], cache: ScoreCache | None = None,
                desc: str | None = None) -> tuple[list[float], dict]:
    """Scores for `texts` (duplicates and cached texts scored zero times); stats: hits, scored, texts/s."""
    texts = list(texts)
    hashes = [text_hash(t) for t in texts]
    unique: dict[str, str] = dict(zip(hashes, texts))
    known = cache.get_many(scorer.name, scorer.version, list(unique)) if cache is not None else {}
    todo = [h for h in unique if h not in known]
    new: dict[str, float] = {}
    start = time.perf_counter()
    bs = max(1, int(scorer.batch_size))
    for i in tqdm(range(0, len(todo), bs), desc=desc or scorer.name, disable=None, leave=False):
        batch = todo[i:i + bs]
        scores = scorer.score([unique[h] for h in batch])
        new.update(zip(batch, scores))
        if cache is not None:  # store per batch: a killed run keeps what it paid for
            cache.put_many(scorer.name, scorer.version, dict(zip(batch, scores)))
            progress_point("score-batch")
    elapsed = time.perf_counter() - start
    known.update(new)
    stats = {"n_texts": len(texts), "n_unique": len(unique), "cache_hits": len(unique) - len(todo),
             "scored": len(todo), "seconds": elapsed,
             "texts_per_s": (len(todo) / elapsed) if todo and elapsed > 0 else float("nan")}
    if todo:
        log.info("%s: scored %d new texts (%d cached) at %.1f texts/s", scorer.name, len(todo),
                 stats["cache_hits"], stats["texts_per_s"])
    return [known[h] for h in hashes], stats
