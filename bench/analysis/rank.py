"""Rank of reward matrices R[prefix, token]: how low-rank is what a reward model says about next tokens?

ARM is low-rank by construction (R = U E^T + b 1^T: rank <= embedding size + 1); RAD is not constrained,
so the spectrum of a trained RAD model says whether a low-rank parametrization can represent it. Rows are
N prefixes (prompts and prefixes of generated continuations, with the BOS token the training collator puts
first), columns the whole vocabulary or the union of the base LM's top-K next tokens per prefix.

Statistics of the singular values s_1 >= s_2 >= ... (of R as is, and with each row's mean removed, which
drops the prefix-only part a baseline can absorb):
* effective rank at relative thresholds: #{i : s_i / s_1 > tau} for tau in (1e-2, 1e-3);
* entropy effective rank exp(H(p)), p_i = s_i / sum_j s_j (Roy & Vetterli 2007);
* relative Frobenius error of the best rank-r approximation: sqrt(sum_{i>r} s_i^2 / sum_i s_i^2) (Eckart-Young).
"""

from __future__ import annotations

import logging
import math
import random
import re
from dataclasses import dataclass
from typing import Any, Iterable

import torch

from bench.errors import DataError
from bench.rewards.base import RewardModel

log = logging.getLogger(__name__)

THRESHOLDS = (1e-2, 1e-3)
NUMERICAL_RTOL = 1e-6  # relative singular values below this are float32 round-off


# ------------------------------------------------------------------------------------ prefixes
def prefixes_from_records(records: Iterable[dict], n: int, cuts: int = 3, seed: int = 0,
                          source: str = "<records>") -> list[str]:
    """Up to n distinct prefixes: each prompt, and each continuation cut after 1/cuts, 2/cuts, ... of its words.

    Records are prompt / generation JSONL rows ({"prompt", "continuations"?}) or plain {"text"} rows.
    """
    pool: list[str] = []
    seen: set[str] = set()

    def add(text: str) -> None:
        if text and text not in seen:
            seen.add(text)
            pool.append(text)

    for i, rec in enumerate(records):
        prompt = rec.get("prompt", rec.get("text"))
        if not isinstance(prompt, str):
            raise DataError(f"{source}: record {i + 1} has no string 'prompt' or 'text'")
        add(prompt)
        for cont in rec.get("continuations", []) or []:
            words = re.findall(r"\s*\S+", cont)  # each word keeps the whitespace before it
            for c in range(1, cuts + 1):
                j = max(1, round(len(words) * c / cuts))
                add(prompt + "".join(words[:j]))
    if not pool:
        raise DataError(f"{source}: no prefixes found")
    random.Random(seed).shuffle(pool)
    if len(pool) < n:
        log.warning("%s: only %d distinct prefixes (asked for %d)", source, len(pool), n)
    return pool[:n]


def encode_prefixes(tokenizer, prefixes: list[str], max_length: int) -> list[list[int]]:
    """The last (max_length - 1) tokens of each prefix, no BOS: the reward model reads its own BOS in front
    (`score_candidates`), so R[prefix, v] = forward(BOS + prefix + v), as training and decoding read it."""
    out = []
    for text in prefixes:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        out.append(list(ids[-(max_length - 1):]) if max_length > 1 else [])
    return out


def left_pad(batch: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(x) for x in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, x in enumerate(batch):
        if x:
            ids[i, width - len(x):] = torch.tensor(x)
            mask[i, width - len(x):] = 1
    return ids.to(device), mask.to(device)


# ------------------------------------------------------------------------------------ the matrix
@torch.no_grad()
def reward_matrix(model: RewardModel, encoded: list[list[int]], columns: torch.Tensor | None = None,
                  batch_size: int = 8, chunk_size: int = 1024, pad_id: int = 0,
                  progress: bool = False) -> torch.Tensor:
    """R [N, C] of the steering attribute: all V tokens (columns None) or the given token ids.

    RAD costs one trunk position per (prefix, token), batched over the cached prefix in chunks; ARM costs
    one forward per prefix however many columns.
    """
    from tqdm.auto import tqdm

    device = model.device
    steer = model.config.steer_index
    rows = []
    starts = range(0, len(encoded), batch_size)
    for s in tqdm(starts, desc=f"R[{model.config.parametrization}]", disable=not progress):
        ids, mask = left_pad(encoded[s:s + batch_size], pad_id, device)
        state = model.new_state()
        if columns is None:
            r = model.score_vocab(ids, mask, state=state, chunk_size=chunk_size)[..., steer]
        else:
            parts = []
            cols = columns.to(device)
            for c in range(0, cols.numel(), chunk_size):
                cand = cols[c:c + chunk_size].expand(ids.shape[0], -1)
                parts.append(model.score_candidates(ids, mask, cand, state)[..., steer])
            r = torch.cat(parts, dim=1)
        rows.append(r.float().cpu())
    return torch.cat(rows, dim=0)


@torch.no_grad()
def topk_columns(base_lm, encoded: list[list[int]], k: int, batch_size: int = 8, pad_id: int = 0) -> torch.Tensor:
    """The union over prefixes of the base LM's top-k next tokens (sorted ids): one shared column set."""
    from bench.rewards.base import position_ids_from_mask

    device = next(base_lm.parameters()).device
    chosen: set[int] = set()
    for s in range(0, len(encoded), batch_size):
        ids, mask = left_pad(encoded[s:s + batch_size], pad_id, device)
        out = base_lm(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask), use_cache=False)
        chosen.update(out.logits[:, -1].topk(k, dim=-1).indices.flatten().tolist())
    return torch.tensor(sorted(chosen), dtype=torch.long)


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


def summarise(matrix: torch.Tensor, center_rows: bool, ranks: list[int] | None = None) -> dict[str, Any]:
    """One row of the rank table for this matrix (as is or row-centred)."""
    sp = spectrum(matrix, center_rows)
    n, c = matrix.shape
    ranks = ranks or powers_of_two(min(n, c))
    row: dict[str, Any] = {
        "n_prefixes": n,
        "n_columns": c,
        "centered": center_rows,
        "rank_1e-2": sp.effective_rank(1e-2),
        "rank_1e-3": sp.effective_rank(1e-3),
        "entropy_rank": sp.entropy_rank(),
        "numerical_rank": sp.numerical_rank(),
    }
    for r in ranks:
        row[f"relerr_r{r}"] = sp.relative_error(r) if r <= min(n, c) else math.nan
    return row


def growth_sizes(n: int, start: int = 8) -> list[int]:
    """N values for the rank-vs-prefixes curve: start, 2*start, ... and n itself."""
    sizes = [s for s in powers_of_two(n) if s >= start]
    if not sizes or sizes[-1] != n:
        sizes.append(n)
    return sizes
