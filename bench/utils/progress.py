"""Progress of long stages (training, generation, scoring, perplexity, rank analysis), readable in a log file.

On a terminal (stderr is a TTY) a stage shows a tqdm bar. Otherwise (a Snakemake rule log, a SLURM job) it
logs one plain line at a steady pace instead -- never a bar, so no `\\r` reaches a log file:

    12:03:41 INFO bench.training.trainer: train rad: 1200/4000 steps (30.0%), 2.15 steps/s, elapsed 9m18s, ETA 21m42s, loss 0.0412

A line is written when `BENCH_PROGRESS_SECONDS` (default 30) have passed since the last one, or when the
stage crosses a multiple of `BENCH_PROGRESS_PERCENT` (default 10; 0: off), and once at the end. The rate and
ETA count only this process's work (a resumed run starts at `initial`). An inner loop whose caller already
reports the stage (the perplexity scorer's batches inside the score stage's loop) passes `lines=False`: a bar
on a terminal, nothing in the log.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

ENV_SECONDS = "BENCH_PROGRESS_SECONDS"
ENV_PERCENT = "BENCH_PROGRESS_PERCENT"
DEFAULT_SECONDS = 30.0
DEFAULT_PERCENT = 10.0


def _env_float(name: str, default: float) -> float:
    from bench.errors import ConfigError

    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ConfigError(
            f"environment variable {name}={raw!r}: expected a number >= 0 (0: every update for "
            f"{ENV_SECONDS}, off for {ENV_PERCENT})"
        )
    return value


def on_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


LIBRARY_BAR_SWITCHES = ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")


def quiet_library_bars() -> None:
    """Off a terminal, switch off the bars transformers / huggingface_hub / datasets draw themselves (e.g.
    transformers' "Loading weights" bar, which writes a carriage return into every rule log). They read these
    switches when first imported, so this runs before any command module is imported; a user's own setting wins."""
    if not on_terminal():
        for name in LIBRARY_BAR_SWITCHES:
            os.environ.setdefault(name, "1")


def duration(seconds: float) -> str:
    """3s, 4m05s, 2h03m."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _rate(rate: float, unit: str) -> str:
    """2.15 steps/s, or 4.2 s/prefix when slower than one a second."""
    if rate >= 1 or rate == 0:
        return f"{rate:.2f} {unit}/s"
    one = unit[:-2] if unit.endswith(("xes", "ches")) else unit[:-1] if unit.endswith("s") else unit
    return f"{1 / rate:.1f} s/{one}"


class Progress:
    """Counts work done out of `total`; a tqdm bar on a terminal, periodic log lines elsewhere.

    `logger`: where the lines go (the stage's module logger). `enabled=False` shows and logs nothing;
    `lines=False` never logs (a bar on a terminal only). Use as a context manager (or call `close()`),
    `update(n)` after each piece of work.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        *,
        initial: int = 0,
        logger: logging.Logger | None = None,
        enabled: bool = True,
        lines: bool = True,
    ) -> None:
        self.total, self.desc, self.unit, self.initial = total, desc, unit, initial
        self.n = initial
        self.log = logger or logging.getLogger(__name__)
        self.enabled = enabled
        self.postfix: dict[str, Any] = {}
        self.seconds = _env_float(ENV_SECONDS, DEFAULT_SECONDS)
        self.percent = _env_float(ENV_PERCENT, DEFAULT_PERCENT)
        self.bar = None
        self.lines = enabled and lines and not on_terminal()
        if enabled and on_terminal():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, leave=lines)
        self.t0 = self.last = time.perf_counter()
        self.last_step = self._step(initial)
        self.closed = False

    def _step(self, n: int) -> int:
        """Index of the `percent` band `n` lies in (-1 when bands are off or the total unknown)."""
        if not self.percent or not self.total:
            return -1
        return int(math.floor(100.0 * n / self.total / self.percent + 1e-9))

    def set_postfix(self, **values: Any) -> None:
        """Extra `key value` pairs for the line / the bar (e.g. the current loss)."""
        self.postfix = values
        if self.bar is not None:
            self.bar.set_postfix(**values, refresh=False)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        if not self.lines or (self.total is not None and self.n >= self.total):
            return  # the closing line reports the end
        now, step = time.perf_counter(), self._step(self.n)
        if now - self.last >= self.seconds or step > self.last_step:
            self.last, self.last_step = now, step
            self.log.info("%s", self.line(now))

    def line(self, now: float | None = None, done: bool = False) -> str:
        """`desc: n/total unit (p%), rate, elapsed, ETA` (+ postfix)."""
        now = time.perf_counter() if now is None else now
        elapsed = now - self.t0
        work = self.n - self.initial
        rate = work / elapsed if elapsed > 0 else math.nan
        parts = [
            f"{self.desc}: {self.n}/{self.total if self.total is not None else '?'} {self.unit}"
            + (f" ({100.0 * self.n / self.total:.1f}%)" if self.total else "")
        ]
        parts.append(_rate(rate, self.unit) if work > 0 and math.isfinite(rate) else f"0 {self.unit} so far")
        parts.append(f"elapsed {duration(elapsed)}")
        if done:
            parts.append("done")
        elif self.total is not None:
            left = max(self.total - self.n, 0)
            parts.append(f"ETA {duration(left / rate) if work > 0 and rate > 0 else '?'}")
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        return ", ".join(parts)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        if self.lines and self.n > self.initial:
            self.log.info("%s", self.line(done=True))

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(
    items: Iterable,
    desc: str,
    unit: str = "it",
    *,
    total: int | None = None,
    logger: logging.Logger | None = None,
    enabled: bool = True,
    lines: bool = True,
) -> Iterator:
    """Iterate `items`, counting each as one unit of work (see `Progress`)."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with Progress(total, desc, unit, logger=logger, enabled=enabled, lines=lines) as p:
        for item in items:
            yield item
            p.update(1)
