"""The one number formatter for tables, CSV cells and log lines."""

from __future__ import annotations

import math
from typing import Any


def fmt(value: Any, spec: str = ".4g", nan: str = "nan", none: str = "n/a") -> str:
    """A float in `spec` (NaN as `nan`), None as `none`, anything else as `str(value)`.

    Booleans and ints are not floats, so they print as themselves.
    """
    if value is None:
        return none
    if isinstance(value, float):
        return nan if math.isnan(value) else format(value, spec)
    return str(value)


def md_table(headers: list[str], rows: list[list[str]], left: int | None = None) -> str:
    """The one Markdown table writer: `|` in a cell is escaped. `left`: how many leading columns align left (the
    rest right); None: no alignment markers."""
    if left is None:
        rule = "|" + "---|" * len(headers)
    else:
        rule = "|" + "|".join(":---" if i < left else "---:" for i in range(len(headers))) + "|"
    lines = ["| " + " | ".join(headers) + " |", rule]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
