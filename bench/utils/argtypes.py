"""argparse types for the suite's flag domains, one meaning of 0 across commands.

* a count that limits how much is used (`--max-prompts`, `--n`, `--n-train`, `--max-rows`, `--top-k`,
  `--steps`, ...): a positive integer; to use everything, omit the flag. 0 and negatives are refused.
* a size or period that may be switched off (`--n-heldout`, `--eval-every`, `--checkpoint-every`,
  `--train-steps`): a non-negative integer, 0 = none / off. Never "all", never -1.
* a weight (`--beta`, `--lr`, ...): a finite float; `inf` and `nan` are refused.
"""

from __future__ import annotations

import argparse
import math


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _at_least(parse, minimum, expected: str, name: str):
    """An argparse type: `parse(text)`, refused below `minimum` with 'expected <expected>'."""

    def check(text: str):
        value = parse(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    check.__name__ = name  # argparse names the type in its own messages
    return check


positive_int = _at_least(_int, 1, "an integer >= 1 (omit the flag for all)", "positive_int")
non_negative_int = _at_least(_int, 0, "an integer >= 0 (0 = none)", "non_negative_int")
non_negative_float = _at_least(finite_float, 0, "a finite number >= 0", "non_negative_float")


def layers(text: str) -> int | None:
    """A number of transformer blocks to keep: an integer >= 1, or `all` (None)."""
    if text.strip().lower() == "all":
        return None
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or 'all', got {text!r}")
    return value
