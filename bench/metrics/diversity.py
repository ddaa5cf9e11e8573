"""Distinct-n (Li et al. 2016 as used by DExperts/RAD): per prompt, the number of unique n-grams over all of
its continuations divided by the total number of whitespace words in them; averaged over prompts."""

from __future__ import annotations

from collections.abc import Sequence


def distinct_n(continuations: Sequence[str], n: int) -> float:
    """Unique n-grams (within each continuation, pooled over the prompt's continuations) / total words."""
    grams: set[tuple[str, ...]] = set()
    total = 0
    for text in continuations:
        words = text.split()
        total += len(words)
        grams.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return len(grams) / total if total else float("nan")


def distinct_per_prompt(groups: Sequence[Sequence[str]], ns: Sequence[int] = (1, 2, 3)) -> dict[int, list[float]]:
    return {n: [distinct_n(g, n) for g in groups] for n in ns}
