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
