"""SST-2 sentences with binary sentiment (1 = positive): the offline sentiment classifier's and a reward
model's training data.

Local: the GLUE TSVs shipped in data/ (`sst2/train.tsv` has header `label\\tsentence`, `sst2/dev.tsv` has
`label\\tcontent`), a folder holding them, or any TSV with a `label` column and one text column.
Hub: `stanfordnlp/sst2` (splits train / validation / test; test labels are hidden, -1, and skipped).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from bench.data.sources import Records, SourceInfo, find_local, load_hub, progress, resolve_source
from bench.data.tabular import iter_rows
from bench.errors import DataError

log = logging.getLogger(__name__)

HUB_ID = "stanfordnlp/sst2"
MIRROR = "sst2"
TEXT_COLUMNS = ("sentence", "content", "text")
SPLIT_ALIASES = {
    "train": "train",
    "dev": "validation",
    "validation": "validation",
    "valid": "validation",
    "test": "test",
}
SPLIT_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}


def default_source() -> str:
    """The shipped folder when present, else the hub id."""
    found = find_local(MIRROR)
    return MIRROR if found is not None and found.is_dir() else HUB_ID


def _split(split: str) -> str:
    try:
        return SPLIT_ALIASES[split]
    except KeyError as exc:
        raise DataError(f"SST-2: unknown split {split!r}; expected one of {sorted(SPLIT_ALIASES)}") from exc


def _read_tsv(path: Path, info: SourceInfo) -> list[dict]:
    rows = iter_rows(path, delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(rows, None)
    if header is None:
        raise DataError(f"{path}: empty file; expected a TSV with header 'label<TAB>sentence'")
    _, cols = header
    cols = [c.strip().lower() for c in cols]
    text_col = next((c for c in TEXT_COLUMNS if c in cols), None)
    if "label" not in cols or text_col is None:
        raise DataError(
            f"{path}: line 1: unexpected header {cols}; expected columns 'label' and one of {list(TEXT_COLUMNS)}"
        )
    li, ti = cols.index("label"), cols.index(text_col)
    out = []
    for lineno, row in progress(rows, f"SST-2 {path.name}"):
        info.read += 1
        if len(row) != len(cols):
            raise DataError(f"{path}: line {lineno}: expected {len(cols)} tab-separated fields {cols}, got {len(row)}")
        label, text = row[li].strip(), row[ti].strip()
        if label not in ("0", "1"):
            raise DataError(f"{path}: line {lineno}: column 'label': expected 0 or 1, got {label!r}")
        if not text:
            info.skip("empty_text")
            continue
        out.append({"text": text, "label": int(label)})
    return out


def load_sst2(source: str | None = None, split: str = "train") -> Records:
    """SST-2 as `[{"text": str, "label": 0|1}]`; `.info` says which source was read.

    `source`: hub id, the shipped folder (`sst2`), or one TSV file (then `split` only labels the provenance).
    """
    source = source or default_source()
    split = _split(split)
    res = resolve_source(source)
    info = SourceInfo(dataset="sst2", kind=res.kind, source=res.value, split=split)
    if res.kind == "local":
        path = res.path
        if path.is_dir():
            found = find_local(path / SPLIT_FILES[split])
            if found is None:
                raise DataError(f"{path / SPLIT_FILES[split]}: SST-2 {split} file (or .gz) not found in {res.path}")
            path = found
        info.files.append(str(path))
        records = _read_tsv(path, info)
    else:
        ds = load_hub(res.value, split, local_hint=f"{MIRROR}/{SPLIT_FILES[split]}")
        records = []
        for row in progress(ds, f"SST-2 {res.value}", total=len(ds)):
            info.read += 1
            label = row.get("label")
            text = str(row.get("sentence") or "").strip()
            if label == -1:  # the test split's hidden labels
                info.skip("unlabeled")
                continue
            if label not in (0, 1) or isinstance(label, bool):
                raise DataError(
                    f"{res.value}: row {info.read - 1}: column 'label': expected 0 or 1 (-1: hidden), got {label!r}"
                )
            label = int(label)
            if not text:
                info.skip("empty_text")
                continue
            records.append({"text": text, "label": label})
    if not records:
        raise DataError(f"{info.source}: no usable SST-2 rows (read {info.read}, skipped {dict(info.skipped)})")
    info.kept = len(records)
    info.log_summary()
    return Records(records, info)


def load_sst2_training(source: str | None = None, split: str = "train") -> Records:
    """SST-2 in the training-split format: `{"text", "labels": {"positive": 0.0|1.0}}`."""
    base = load_sst2(source, split)
    return Records(({"text": r["text"], "labels": {"positive": float(r["label"])}} for r in base), base.info)
