"""Streaming CSV/TSV rows with physical line numbers, strict UTF-8 and clear errors on malformed rows."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path

from bench.data.sources import iter_text_lines, require_file
from bench.errors import DataError

# Jigsaw comments can be long; the default csv field limit (128 KiB) is too small for a few of them.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def iter_rows(path: Path, *, delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL) -> Iterator[tuple[int, list[str]]]:
    """Yield (first physical line of the row, fields) for every non-empty row."""
    path = require_file(path)
    lines = iter_text_lines(path)
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting, strict=True)
    last_end = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"{path}: line {reader.line_num}: malformed CSV row ({exc})") from exc
        start = last_end + 1
        last_end = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        yield start, row


def read_header(path: Path, *, delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL) -> list[str] | None:
    """The first row of the file (None for an empty file)."""
    for _, row in iter_rows(path, delimiter=delimiter, quoting=quoting):
        return row
    return None


def parse_float(value: str, *, path: Path, lineno: int, column: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: line {lineno}: column {column!r}: expected a number, got {value!r}") from exc
