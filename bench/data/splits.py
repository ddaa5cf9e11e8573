"""Deterministic seeded sampling and train / held-out splits.

The held-out set is drawn first from one seeded permutation, so growing `n_train` never changes which rows are
held out; rows are never shared between the two sets (and callers de-duplicate texts first).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence

from bench.errors import DataError

log = logging.getLogger(__name__)


def sample_records(
    records: Sequence[dict], n: int | None, seed: int, *, allow_fewer: bool = False, what: str = "records"
) -> list[dict]:
    """`n` records drawn with `random.Random(seed)`, kept in source order; None or -1 -> all of them."""
    if n is None or n < 0 or n == len(records):
        return list(records)
    if n > len(records):
        if not allow_fewer:
            raise DataError(
                f"{what}: asked for {n} but only {len(records)} are available "
                f"(lower the size, or pass --allow-fewer / allow_fewer=True to use them all)"
            )
        log.warning("%s: asked for %d, only %d available; using all of them", what, n, len(records))
        return list(records)
    idx = sorted(random.Random(seed).sample(range(len(records)), n))
    return [records[i] for i in idx]


def dedupe_texts(records: Sequence[dict], key: str = "text") -> tuple[list[dict], int]:
    """Drop later records whose text repeats an earlier one (so train and held-out cannot share a text)."""
    seen: set[str] = set()
    out = []
    for rec in records:
        t = rec[key]
        if t in seen:
            continue
        seen.add(t)
        out.append(rec)
    return out, len(records) - len(out)


def _take(pool: list[int], n: int, label: str) -> tuple[list[int], list[int]]:
    if n > len(pool):
        raise DataError(f"split: need {n} {label} rows but only {len(pool)} are available")
    return pool[:n], pool[n:]


def split_train_heldout(
    records: Sequence[dict],
    n_train: int | None,
    n_heldout: int,
    seed: int,
    *,
    balance: Callable[[dict], int] | None = None,
) -> tuple[list[dict], list[dict]]:
    """Seeded disjoint (train, held-out) lists, in shuffled order.

    `n_train` None or -1 takes every remaining row. With `balance` (record -> class 0/1) each set has
    n//2 rows of class 0 and n - n//2 of class 1 (with n_train=-1: as many as the smaller class allows).
    """
    if n_heldout < 0:
        raise DataError(f"split: n_heldout must be >= 0, got {n_heldout}")
    rng = random.Random(seed)
    order = list(range(len(records)))
    rng.shuffle(order)
    if balance is None:
        held, rest = _take(order, n_heldout, "held-out")
        if n_train is None or n_train < 0:
            train = rest
        else:
            train, _ = _take(rest, n_train, f"train (after {n_heldout} held-out)")
    else:
        pools: dict[int, list[int]] = {0: [], 1: []}
        for i in order:
            c = balance(records[i])
            if c not in pools:
                raise DataError(f"split: balance class must be 0 or 1, got {c!r}")
            pools[c].append(i)
        h0, r0 = _take(pools[0], n_heldout // 2, "held-out class-0")
        h1, r1 = _take(pools[1], n_heldout - n_heldout // 2, "held-out class-1")
        if n_train is None or n_train < 0:
            k = min(len(r0), len(r1))
            t0, t1 = r0[:k], r1[:k]
        else:
            t0, _ = _take(r0, n_train // 2, "train class-0")
            t1, _ = _take(r1, n_train - n_train // 2, "train class-1")
        # interleave in the permutation's order so classes are mixed, not blocked
        rank = {i: r for r, i in enumerate(order)}
        held = sorted(h0 + h1, key=rank.__getitem__)
        train = sorted(t0 + t1, key=rank.__getitem__)
    return [records[i] for i in train], [records[i] for i in held]


def finish_prompt_set(
    records: list[dict], info, *, n: int | None, seed: int, allow_fewer: bool, expected: str, none_left: str, what: str
):
    """Shared tail of every prompt loader: refuse an empty file or an empty result, log skipped empty
    prompts, sample `n` with the seed, and record the counts in `info` (written next to the output)."""
    from bench.data.sources import Records

    if info.read == 0:
        raise DataError(f"{info.source}: empty prompt file; expected {expected}")
    if not records:
        raise DataError(f"{info.source}: {none_left}")
    if info.skipped.get("empty_prompt"):
        log.warning("%s: skipped %d empty prompts", info.source, info.skipped["empty_prompt"])
    info.available = len(records)
    records = sample_records(records, n, seed, allow_fewer=allow_fewer, what=what)
    info.kept = len(records)
    info.log_summary()
    return Records(records, info)
