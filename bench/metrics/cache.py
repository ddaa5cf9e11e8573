"""Content-addressed score cache: (scorer name, scorer version, sha256 of text) -> score, in SQLite.

Identical texts are scored once across runs, methods and betas (prompts repeat across every run; a rerun
with one more beta scores only the new continuations). The pipeline keeps one file per run
(`{work_dir}/cache/scores.sqlite`) that every concurrent score job reads and writes: WAL mode (readers never
block the writer), a busy timeout, writes in `BEGIN IMMEDIATE` transactions (no reader-to-writer upgrade
deadlock), and retries with backoff when SQLite still answers "database is locked". NaN (a failed score) is
never stored, so it is retried next run.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from bench.errors import DataError
from bench.metrics.base import Scorer
from bench.utils.progress import Progress
from bench.utils.testhooks import progress_point

log = logging.getLogger(__name__)

_SCHEMA = """CREATE TABLE IF NOT EXISTS scores (
  scorer TEXT NOT NULL, version TEXT NOT NULL, text_hash TEXT NOT NULL, score REAL NOT NULL,
  PRIMARY KEY (scorer, version, text_hash)) WITHOUT ROWID"""


T = TypeVar("T")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg


class ScoreCache:
    """A SQLite file shared by concurrent jobs; `None` path means an in-memory (per-process) cache."""

    def __init__(self, path: str | Path | None, timeout_s: float = 60.0, retries: int = 8) -> None:
        self.path = str(path) if path else ":memory:"
        self.retries = retries
        self.lookups: dict[str, dict[str, int]] = {}  # scorer -> {"hits", "misses"} of this connection's get_many
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves for writes
        self.conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)

        def setup() -> list[str]:
            if path:
                self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute(_SCHEMA)
            return [r[1] for r in self.conn.execute("PRAGMA table_info(scores)")]

        try:
            cols = self._retry(setup)
        except sqlite3.DatabaseError as exc:  # not SQLite at all ("file is not a database"), or corrupt
            if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                raise
            self.conn.close()
            raise DataError(
                f"{self.path}: not a usable SQLite score cache ({exc}); expected a cache written by "
                "`bench score --cache`, or a path that does not exist yet"
            ) from exc
        if cols != ["scorer", "version", "text_hash", "score"]:
            self.conn.close()
            raise DataError(
                f"{self.path}: SQLite file without the score cache's table (columns {cols}); "
                "expected a cache written by `bench score --cache`"
            )

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run `fn`, retrying with jittered backoff while another process holds a lock the timeout did not outwait."""
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt == self.retries:
                    if self.conn.in_transaction:
                        self.conn.rollback()
                    # disk full, a read-only file or folder, still locked after every retry: one line, the path
                    raise DataError(
                        f"{self.path}: score cache failed ({exc}); expected a writable SQLite file "
                        "(delete it to start an empty cache: it only saves time)"
                    ) from exc
                if self.conn.in_transaction:
                    self.conn.rollback()
                delay = min(5.0, 0.05 * 2**attempt) * (0.5 + random.random())
                log.warning(
                    "score cache %s busy (%s); retry %d/%d in %.2f s", self.path, exc, attempt + 1, self.retries, delay
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    def get_many(self, scorer: str, version: str, hashes: Sequence[str]) -> dict[str, float]:
        found: dict[str, float] = {}
        hashes = list(hashes)
        for i in range(0, len(hashes), 500):
            chunk = hashes[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._retry(
                lambda chunk=chunk, marks=marks: self.conn.execute(
                    f"SELECT text_hash, score FROM scores WHERE scorer=? AND version=? AND text_hash IN ({marks})",
                    (scorer, version, *chunk),
                ).fetchall()
            )
            found.update(rows)
        counts = self.lookups.setdefault(scorer, {"hits": 0, "misses": 0})
        counts["hits"] += len(found)
        counts["misses"] += len(set(hashes)) - len(found)
        return found

    def hit_stats(self) -> dict:
        """Lookups of this connection: per scorer and in total, hits, misses and the hit rate (None if none)."""

        def rate(c: dict) -> dict:
            n = c["hits"] + c["misses"]
            return {**c, "hit_rate": (c["hits"] / n) if n else None}

        total = {
            "hits": sum(c["hits"] for c in self.lookups.values()),
            "misses": sum(c["misses"] for c in self.lookups.values()),
        }
        return {"path": self.path, "total": rate(total), "by_scorer": {k: rate(v) for k, v in self.lookups.items()}}

    def put_many(self, scorer: str, version: str, items: dict[str, float]) -> None:
        rows = [(scorer, version, h, float(s)) for h, s in items.items() if not math.isnan(float(s))]
        if not rows:
            return

        def write() -> None:
            self.conn.execute("BEGIN IMMEDIATE")  # take the write lock now (waits up to the busy timeout)
            try:
                self.conn.executemany("INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?)", rows)
            except BaseException:
                self.conn.rollback()
                raise
            self.conn.commit()

        self._retry(write)

    def __bool__(self) -> bool:  # an empty cache is still a cache (len() would make it falsy)
        return True

    def __len__(self) -> int:
        return int(self._retry(lambda: self.conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]))

    def close(self) -> None:
        self.conn.close()


def score_texts(
    scorer: Scorer, texts: Sequence[str], cache: ScoreCache | None = None, desc: str | None = None
) -> tuple[list[float], dict]:
    """Scores for `texts` (duplicates and cached texts scored zero times); stats: hits, scored, texts/s."""
    texts = list(texts)
    hashes = [text_hash(t) for t in texts]
    unique: dict[str, str] = dict(zip(hashes, texts))
    known = cache.get_many(scorer.name, scorer.version, list(unique)) if cache is not None else {}
    todo = [h for h in unique if h not in known]
    new: dict[str, float] = {}
    start = time.perf_counter()
    bs = max(1, int(scorer.batch_size))
    with Progress(len(todo), desc or scorer.name, "texts", logger=log) as bar:  # lines in a log, a bar on a tty
        for i in range(0, len(todo), bs):
            batch = todo[i : i + bs]
            scores = scorer.score([unique[h] for h in batch])
            new.update(zip(batch, scores))
            if cache is not None:  # store per batch: a killed run keeps what it paid for
                cache.put_many(scorer.name, scorer.version, dict(zip(batch, scores)))
                progress_point("score-batch")
            bar.update(len(batch))
    elapsed = time.perf_counter() - start
    known.update(new)
    stats = {
        "n_texts": len(texts),
        "n_unique": len(unique),
        "cache_hits": len(unique) - len(todo),
        "scored": len(todo),
        "seconds": elapsed,
        "texts_per_s": (len(todo) / elapsed) if todo and elapsed > 0 else float("nan"),
    }
    if todo:
        log.info(
            "%s: scored %d new texts (%d cached) at %.1f texts/s",
            scorer.name,
            len(todo),
            stats["cache_hits"],
            stats["texts_per_s"],
        )
    return [known[h] for h in hashes], stats
