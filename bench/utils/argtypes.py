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


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 (omit the flag for all), got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0 (0 = none), got {text!r}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def layers(text: str) -> int | None:
    """A number of transformer blocks to keep: an integer >= 1, or `all` (None)."""
    if text.strip().lower() == "all":
        return None
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or 'all', got {text!r}")
    return value
