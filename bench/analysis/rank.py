"""Rank of reward matrices R[prefix, token]: how low-rank is what a reward model says about next tokens?

ARM is low-rank by construction (R = U E^T + b 1^T: rank <= `rank_bound()`); RAD is not constrained, so the
spectrum of a trained RAD model says whether a low-rank parametrization can represent it. Rows are N prefixes
(prompts, prefixes of generated continuations and of held-out texts; seeded, de-duplicated), read as the
reward model reads them everywhere (its own BOS first: R[x, v] = forward(BOS + x + v) at v). Columns are C
token ids FIXED for all prefixes (the most frequent tokens of the prefix sources and/or a seeded sample of the
vocabulary), so that rank can only grow with N where the function itself has more directions: a rank that
plateaus below min(N, C) as N grows is evidence of low rank, one that tracks N is not.

Statistics of the singular values s_1 >= s_2 >= ... (of R as is, and with each row's mean removed, which
drops the prefix-only part a baseline can absorb):
* effective rank at relative thresholds: #{i : s_i / s_1 > tau} for tau in (1e-2, 1e-3);
* entropy effective rank exp(H(p)), p_i = s_i / sum_j s_j (Roy & Vetterli 2007);
* relative Frobenius error of the best rank-r approximation: sqrt(sum_{i>r} s_i^2 / sum_i s_i^2) (Eckart-Young).
Every rank is at most cap = min(N, C) (row-centred: min(N, C - 1)); the tables carry the cap.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from bench.errors import DataError, ModelError
from bench.rewards.base import RewardModel

log = logging.getLogger(__name__)

THRESHOLDS = (1e-2, 1e-3)
NUMERICAL_RTOL = 1e-6  # relative singular values below this are float32 round-off


# ------------------------------------------------------------------------------------ prefixes
def prefix_pool(records: Iterable[dict], cuts: int = 3, source: str = "<records>") -> list[str]:
    """Distinct prefixes in file order: each prompt and each continuation cut after 1/cuts, 2/cuts, ... of its
    words (prompt rows {"prompt", "continuations"?}); each text cut the same way (text rows {"text", ...})."""
    pool: list[str] = []
    seen: set[str] = set()

    def add(text: str) -> None:
        if text and text.strip() and text not in seen:
            seen.add(text)
            pool.append(text)

    def add_cuts(head: str, tail: str) -> None:
        words = re.findall(r"\s*\S+", tail)  # each word keeps the whitespace before it
        if not words:
            return
        for c in range(1, cuts + 1):
            add(head + "".join(words[: max(1, round(len(words) * c / cuts))]))

    for i, rec in enumerate(records):
        if isinstance(rec.get("prompt"), str):
            add(rec["prompt"])
            for cont in rec.get("continuations", []) or []:
                add_cuts(rec["prompt"], cont)
        elif isinstance(rec.get("text"), str):
            add_cuts("", rec["text"])
        else:
            raise DataError(f"{source}: record {i + 1} has no string 'prompt' or 'text'")
    return pool


def prefixes_from_records(
    records: Iterable[dict], n: int, cuts: int = 3, seed: int = 0, source: str = "<records>"
) -> list[str]:
    """Up to n distinct prefixes of `prefix_pool`, in a seeded random order (so the first N of them are a
    random subset: rank-vs-N uses nested subsets)."""
    pool = prefix_pool(records, cuts, source)
    if not pool:
        raise DataError(f"{source}: no prefixes found")
    random.Random(seed).shuffle(pool)
    if len(pool) < n:
        log.warning("%s: only %d distinct prefixes (asked for %d)", source, len(pool), n)
    return pool[:n]


def source_texts(records: Iterable[dict]) -> list[str]:
    """The text of every record (prompt + its continuations, or the text): what token frequencies count."""
    return [
        (rec.get("prompt") or rec.get("text") or "") + "".join(rec.get("continuations", []) or []) for rec in records
    ]


def token_counts(tokenizer, texts: Iterable[str]) -> Counter:
    """How often each token id occurs in the texts (tokenized without special tokens)."""
    counts: Counter = Counter()
    texts = list(texts)
    for s in range(0, len(texts), 256):
        for ids in tokenizer(texts[s : s + 256], add_special_tokens=False)["input_ids"]:
            counts.update(ids)
    return counts


COLUMN_KINDS = ("mixed", "frequent", "sample", "vocab")


def choose_columns(
    kind: str, n_columns: int, vocab_size: int, counts: Counter | None = None, seed: int = 0
) -> torch.Tensor:
    """C token ids shared by every prefix (sorted): the C most frequent tokens of the prefix sources ("frequent";
    ties by id), a seeded uniform sample of the vocabulary ("sample"), half of each ("mixed": the frequent half
    first, the sample drawn from the rest), or all V ids ("vocab")."""
    if kind not in COLUMN_KINDS:
        raise DataError(f"rank columns '{kind}': expected one of {list(COLUMN_KINDS)}")
    if kind == "vocab":
        return torch.arange(vocab_size)
    n_columns = min(int(n_columns), vocab_size)
    n_freq = {"frequent": n_columns, "sample": 0, "mixed": (n_columns + 1) // 2}[kind]
    ranked = sorted(((-c, t) for t, c in (counts or {}).items() if 0 <= t < vocab_size))
    chosen = [t for _, t in ranked[:n_freq]]
    rest = sorted(set(range(vocab_size)) - set(chosen))
    chosen += random.Random(seed).sample(rest, n_columns - len(chosen))
    return torch.tensor(sorted(chosen), dtype=torch.long)


def encode_prefixes(tokenizer, prefixes: list[str], max_length: int) -> list[list[int]]:
    """The last (max_length - 1) tokens of each prefix, no BOS: the reward model reads its own BOS in front
    (`score_candidates`), so R[prefix, v] = forward(BOS + prefix + v), as training and decoding read it."""
    out = []
    for text in prefixes:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        out.append(list(ids[-(max_length - 1) :]) if max_length > 1 else [])
    return out


def left_pad(batch: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(x) for x in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, x in enumerate(batch):
        if x:
            ids[i, width - len(x) :] = torch.tensor(x)
            mask[i, width - len(x) :] = 1
    return ids.to(device), mask.to(device)


# ------------------------------------------------------------------------------------ the matrix
@torch.no_grad()
def reward_matrix(
    model: RewardModel,
    encoded: list[list[int]],
    columns: torch.Tensor | None = None,
    batch_size: int = 8,
    chunk_size: int = 1024,
    pad_id: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """R [N, C] of the steering attribute: R[i, j] = forward(BOS + prefix_i + columns_j) at its last position;
    all V tokens when columns is None.

    Prefixes are batched by length (less padding) and R is returned in their given order. RAD reads each
    prefix once into its cache and then the columns in chunks of `chunk_size` candidates per forward (one
    trunk position per (prefix, token)); ARM costs one forward per prefix however many columns.
    """
    from bench.utils.progress import Progress

    device = model.device
    steer = model.config.steer_index
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out = torch.empty(len(encoded), model.vocab_size if columns is None else int(columns.numel()))
    cols = columns.to(device) if columns is not None else None
    starts = range(0, len(order), batch_size)
    bar = Progress(len(encoded), f"R[{model.config.parametrization}]", "prefixes", logger=log, enabled=progress)
    for s in starts:
        rows = order[s : s + batch_size]
        ids, mask = left_pad([encoded[i] for i in rows], pad_id, device)
        state = model.new_state()
        if cols is None:
            r = model.score_vocab(ids, mask, state=state, chunk_size=chunk_size)[..., steer]
        else:
            r = torch.cat(
                [
                    model.score_candidates(ids, mask, cols[c : c + chunk_size].expand(len(rows), -1), state)[..., steer]
                    for c in range(0, cols.numel(), chunk_size)
                ],
                dim=1,
            )
        out[rows] = r.float().cpu()
        bar.update(len(rows))
    bar.close()
    if not torch.isfinite(out).all():
        raise ModelError(f"{model.config.parametrization}: non-finite rewards in the reward matrix")
    return out


# ------------------------------------------------------------------------------------ spectrum statistics
@dataclass
class Spectrum:
    sigma: torch.Tensor  # singular values, descending, float64

    @property
    def normalised(self) -> torch.Tensor:
        return self.sigma / self.sigma[0] if self.sigma.numel() and self.sigma[0] > 0 else self.sigma

    def effective_rank(self, tau: float) -> int:
        """#{i : s_i / s_1 > tau}."""
        return int((self.normalised > tau).sum())

    def entropy_rank(self) -> float:
        total = self.sigma.sum()
        if total <= 0:
            return 0.0
        p = self.sigma / total
        p = p[p > 0]
        return float(torch.exp(-(p * p.log()).sum()))

    def numerical_rank(self, rtol: float = NUMERICAL_RTOL) -> int:
        """Rank above float32 round-off: s_i / s_1 > 1e-6 (R is computed in float32, eps ~1.2e-7)."""
        return self.effective_rank(rtol)

    def relative_error(self, r: int) -> float:
        """||R - R_r||_F / ||R||_F for the best rank-r approximation R_r."""
        sq = self.sigma.pow(2)
        total = float(sq.sum())
        return math.sqrt(float(sq[r:].sum()) / total) if total > 0 else 0.0


def spectrum(matrix: torch.Tensor, center_rows: bool = False) -> Spectrum:
    m = matrix.double()
    if center_rows:
        m = m - m.mean(dim=1, keepdim=True)
    return Spectrum(torch.linalg.svdvals(m))


def powers_of_two(limit: int) -> list[int]:
    out, r = [], 1
    while r <= limit:
        out.append(r)
        r *= 2
    return out


def column_cap(n_rows: int, n_columns: int, center_rows: bool) -> int:
    """The largest rank an N x C matrix can have (row-centring removes one column direction)."""
    return max(0, min(n_rows, n_columns - 1 if center_rows else n_columns))


def summarise(matrix: torch.Tensor, center_rows: bool, ranks: list[int] | None = None) -> dict[str, Any]:
    """One row of the rank table for this matrix (as is or row-centred)."""
    sp = spectrum(matrix, center_rows)
    n, c = matrix.shape
    ranks = ranks or powers_of_two(min(n, c))
    row: dict[str, Any] = {
        "n_prefixes": n,
        "n_columns": c,
        "centered": center_rows,
        "cap": column_cap(n, c, center_rows),
        "rank_1e-2": sp.effective_rank(1e-2),
        "rank_1e-3": sp.effective_rank(1e-3),
        "entropy_rank": sp.entropy_rank(),
        "numerical_rank": sp.numerical_rank(),
    }
    for r in ranks:
        row[f"relerr_r{r}"] = sp.relative_error(r) if r <= min(n, c) else math.nan
    return row


def growth_sizes(n: int, start: int = 64) -> list[int]:
    """N values for rank-vs-N: start, 2*start, ... below n, and n itself."""
    sizes = [s for s in powers_of_two(n) if s >= start and s < n]
    return sizes + [n]


def rank_vs_n(matrix: torch.Tensor, sizes: list[int]) -> list[dict[str, Any]]:
    """Ranks of the first N rows (a random subset: prefixes come shuffled) for each N, raw and row-centred."""
    rows = []
    for n in sizes:
        for centered in (False, True):
            sp = spectrum(matrix[:n], centered)
            rows.append(
                {
                    "n_prefixes": n,
                    "n_columns": int(matrix.shape[1]),
                    "centered": centered,
                    "cap": column_cap(n, int(matrix.shape[1]), centered),
                    "rank_1e-2": sp.effective_rank(1e-2),
                    "rank_1e-3": sp.effective_rank(1e-3),
                    "entropy_rank": sp.entropy_rank(),
                }
            )
    return rows
