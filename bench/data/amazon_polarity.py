"""Amazon Polarity reviews (binary sentiment) for sentiment reward training: `{"text", "labels": {"positive"}}`.

Hub: `fancyzhx/amazon_polarity` (label 0 negative / 1 positive, `title`, `content`). Local: the original
Zhang et al. CSV (no header: label 1 negative / 2 positive, title, content) or a CSV with header
`label,title,content` (0/1). The text is the title and the review joined by ". " (the title often carries the
sentiment), or the review alone when the title is empty.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from bench.data.sources import Records, SourceInfo, load_hub, progress, require_file, resolve_source
from bench.data.tabular import iter_rows
from bench.errors import DataError

log = logging.getLogger(__name__)

HUB_ID = "fancyzhx/amazon_polarity"


def _text(title: str | None, content: str | None) -> str:
    title, content = (title or "").strip(), (content or "").strip()
    if title and content:
        return f"{title.rstrip('.')}. {content}"
    return title or content


def _local_rows(path: Path) -> Iterable[tuple[str, int, str]]:
    rows = iter_rows(path)
    first = next(rows, None)
    if first is None:
        raise DataError(f"{path}: empty file; expected CSV rows `label, title, content`")
    _, head = first
    has_header = [c.strip().lower() for c in head] == ["label", "title", "content"]
    mapping = {"0": 0, "1": 1} if has_header else {"1": 0, "2": 1}
    expect = "0 or 1" if has_header else "1 (negative) or 2 (positive)"
    stream = rows if has_header else _chain(first, rows)
    for ln, row in stream:
        if len(row) != 3:
            raise DataError(f"{path}: line {ln}: expected 3 fields `label, title, content`, got {len(row)}")
        if row[0].strip() not in mapping:
            raise DataError(f"{path}: line {ln}: column 'label': expected {expect}, got {row[0]!r}")
        yield f"{path}: line {ln}", mapping[row[0].strip()], _text(row[1], row[2])


def _hub_label(value, where: str) -> int:
    """The hub schema's label: 0 (negative) or 1 (positive)."""
    if value not in (0, 1) or isinstance(value, bool):
        raise DataError(f"{where}: column 'label': expected 0 or 1, got {value!r}")
    return int(value)


def _chain(first, rest):
    yield first
    yield from rest


def load_amazon_polarity(source: str | None = None, split: str = "train") -> Records:
    res = resolve_source(source or HUB_ID)
    info = SourceInfo(dataset="amazon-polarity", kind=res.kind, source=res.value, split=split)
    if res.kind == "local":
        path = require_file(res.path, "Amazon Polarity CSV")
        info.files.append(str(path))
        rows = _local_rows(path)
    else:
        ds = load_hub(res.value, split)
        rows = (
            (
                f"{res.value}: row {i}",
                _hub_label(r.get("label"), f"{res.value}: row {i}"),
                _text(r.get("title"), r.get("content")),
            )
            for i, r in enumerate(ds)
        )
    records = []
    for _, label, text in progress(rows, "amazon-polarity"):
        info.read += 1
        if not text:
            info.skip("empty_text")
            continue
        records.append({"text": text, "labels": {"positive": float(label)}})
    if not records:
        raise DataError(f"{info.source}: no usable Amazon Polarity rows (read {info.read})")
    info.kept = len(records)
    info.log_summary()
    return Records(records, info)
