"""Toxicity training data: `{"text", "labels": {attribute: float}}` from Jigsaw / Civil Comments / Davidson.

One reader, several flavours detected from the columns (a CSV header, or a hub data set's column names):
- `civil`: Civil Comments / Jigsaw Unintended Bias, 7 continuous attributes (hub `google/civil_comments`
  column `text`; the Kaggle unintended-bias CSV `comment_text` with `target` as toxicity);
- `kaggle`: the Kaggle toxic-comment schema `id, comment_text, toxic, severe_toxic, obscene, threat, insult,
  identity_hate` (binary; renamed to the Civil Comments attribute names);
- `binary`: no header, two columns `comment_text, toxic` (the shipped `jigsaw/robtest_jigsaw_test.csv`);
- `davidson`: Davidson et al. tweets (`count, hate_speech, offensive_language, neither, class, tweet`):
  toxicity 1 for class 0 (hate) / 1 (offensive), or with `davidson_label="share"` the annotators' share.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.data.paths import data_dir
from bench.data.sources import (
    Records,
    SourceInfo,
    data_suffix,
    find_local,
    load_hub,
    progress,
    require_file,
    resolve_source,
)
from bench.data.tabular import iter_rows
from bench.errors import DataError
from bench.utils.io import iter_jsonl

log = logging.getLogger(__name__)

CIVIL_ATTRIBUTES = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack", "sexual_explicit")
KAGGLE_COLUMNS = ("id", "comment_text", "toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
KAGGLE_TO_CIVIL = {
    "toxic": "toxicity",
    "severe_toxic": "severe_toxicity",
    "obscene": "obscene",
    "threat": "threat",
    "insult": "insult",
    "identity_hate": "identity_attack",
}
DAVIDSON_COLUMNS = ("count", "hate_speech", "offensive_language", "neither", "class", "tweet")
EXPECTED = (
    "expected one of: no header with 2 columns `comment_text, toxic` (0/1); "
    f"a header {list(KAGGLE_COLUMNS)} (Kaggle); a header with `comment_text` or `text` and "
    f"`target` or `toxicity` plus {list(CIVIL_ATTRIBUTES[1:])} (Civil Comments); "
    f"a header {list(DAVIDSON_COLUMNS)} (Davidson)"
)

# dataset name -> (default local file shipped in data/, hub id, flavours it accepts)
DATASETS: dict[str, tuple[str | None, str | None, tuple[str, ...]]] = {
    "jigsaw": ("jigsaw/robtest_jigsaw_test.csv", None, ("binary", "kaggle", "civil", "prepared")),
    "kaggle-jigsaw": ("jigsaw/kurita_jigsaw_train_267.csv", None, ("kaggle", "prepared")),
    "civil-comments": (None, "google/civil_comments", ("civil", "kaggle", "binary", "prepared")),
    "davidson": ("davidson/labeled_data.csv", "tdavidson/hate_speech_offensive", ("davidson", "prepared")),
}


def default_source(dataset: str) -> str:
    local, hub, _ = DATASETS[dataset]
    if local and find_local(local) is not None:
        return local
    if hub:
        return hub
    raise DataError(
        f"{dataset}: no --source given and the shipped file {local!r} was not found in {data_dir()}; pass a CSV path"
    )


def detect_flavour(columns: list[str]) -> str | None:
    """Flavour from lower-cased column names; None when they match nothing known."""
    cols = set(columns)
    if {"comment_text", "toxic", "severe_toxic", "identity_hate"} <= cols:
        return "kaggle"
    if ({"comment_text", "text"} & cols) and ({"target", "toxicity"} & cols):
        return "civil"
    if "tweet" in cols and "class" in cols:
        return "davidson"
    if cols == {"comment_text", "toxic"}:
        return "binary"
    return None


def _num(value: Any, where: str, column: str) -> float | None:
    """A label value as a finite float; '' / None -> None (missing); NaN / Inf are refused."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: column {column!r}: expected a number, got {value!r}") from exc
    if not math.isfinite(x):
        raise DataError(f"{where}: column {column!r}: expected a finite number, got {value!r}")
    return x


def _fraction(value: Any, where: str, column: str) -> float | None:
    """A label that is a share of annotators (Civil Comments, prepared splits): a number in [0, 1]."""
    x = _num(value, where, column)
    if x is not None and not 0.0 <= x <= 1.0:
        raise DataError(f"{where}: column {column!r}: expected a fraction in [0, 1], got {value!r}")
    return x


def _count(value: Any, where: str, column: str) -> float | None:
    """An annotator count (Davidson): a non-negative integer."""
    x = _num(value, where, column)
    if x is not None and (x < 0 or x != int(x)):
        raise DataError(f"{where}: column {column!r}: expected a count (integer >= 0), got {value!r}")
    return x


def _to_record(row: dict, flavour: str, where: str, info: SourceInfo, davidson_label: str) -> dict | None:
    if flavour == "prepared":
        text, labels = row.get("text"), row.get("labels")
        if not isinstance(text, str) or not isinstance(labels, dict):
            raise DataError(f"{where}: expected {{'text': str, 'labels': {{attribute: number}}}}")
        labels = {k: _fraction(v, where, f"labels.{k}") for k, v in labels.items()}
    elif flavour == "davidson":
        text = row.get("tweet")
        text = html.unescape(text) if isinstance(text, str) else text
        cls = _num(row.get("class"), where, "class")
        if cls not in (0.0, 1.0, 2.0):
            raise DataError(
                f"{where}: column 'class': expected 0 (hate), 1 (offensive) or 2 (neither), got {row.get('class')!r}"
            )
        if davidson_label == "share":
            count = _count(row.get("count"), where, "count")
            hate = _count(row.get("hate_speech", row.get("hate_speech_count")), where, "hate_speech")
            off = _count(
                row.get("offensive_language", row.get("offensive_language_count")), where, "offensive_language"
            )
            if not count or hate is None or off is None:
                raise DataError(
                    f"{where}: columns count / hate_speech / offensive_language: expected annotator counts > 0"
                )
            if hate + off > count:
                raise DataError(
                    f"{where}: columns hate_speech + offensive_language = {hate + off:g} exceed "
                    f"count = {count:g}; expected at most count annotators"
                )
            labels = {"toxicity": (hate + off) / count}
        else:
            labels = {"toxicity": 1.0 if cls in (0.0, 1.0) else 0.0}
    elif flavour == "kaggle":
        text = row.get("comment_text")
        labels = {KAGGLE_TO_CIVIL[c]: _num(row.get(c), where, c) for c in KAGGLE_TO_CIVIL}
        if any(v is not None and v not in (0.0, 1.0) for v in labels.values()):
            if any(v == -1.0 for v in labels.values()):
                info.skip("unlabeled")  # Kaggle test rows carry -1
                return None
            raise DataError(f"{where}: Kaggle label columns must be 0 or 1, got {labels}")
    elif flavour == "binary":
        text = row.get("comment_text")
        labels = {"toxicity": _num(row.get("toxic"), where, "toxic")}
        if labels["toxicity"] not in (0.0, 1.0, None):
            raise DataError(f"{where}: column 2 'toxic': expected 0 or 1, got {row.get('toxic')!r}")
    else:  # civil
        text = row.get("text", row.get("comment_text"))
        labels = {}
        for attr in CIVIL_ATTRIBUTES:
            col = "target" if attr == "toxicity" and "target" in row else attr
            if col in row:
                labels[attr] = _fraction(row[col], where, col)
    if not isinstance(text, str) or not text.strip():
        info.skip("empty_text")
        return None
    if any(v is None for v in labels.values()):
        info.skip("missing_label")
        return None
    return {"text": text.strip(), "labels": labels}


def _local_rows(path: Path) -> tuple[str, Iterable[tuple[str, dict]]]:
    """Detect the file's flavour and yield (where, row dict)."""
    if data_suffix(path) in (".jsonl", ".json"):
        return "prepared", ((f"{path}: line {ln}", rec) for ln, rec in iter_jsonl(path))
    rows = iter_rows(path)
    first = next(rows, None)
    if first is None:
        raise DataError(f"{path}: empty file; {EXPECTED}")
    _, header = first
    cols = [c.strip().lower() for c in header]
    flavour = detect_flavour(cols)
    if flavour is None and len(header) == 2 and header[1].strip() in ("0", "1"):
        flavour, cols = "binary", ["comment_text", "toxic"]
        rows = _chain(first, rows)
    if flavour is None:
        raise DataError(f"{path}: line 1: unrecognised columns {cols[:10]}; {EXPECTED}")
    if flavour == "davidson" and cols and cols[0] == "":
        cols[0] = "index"

    def gen():
        for ln, row in rows:
            if len(row) != len(cols):
                raise DataError(f"{path}: line {ln}: expected {len(cols)} fields {cols}, got {len(row)}")
            yield f"{path}: line {ln}", dict(zip(cols, row))

    return flavour, gen()


def _chain(first, rest):
    yield first
    yield from rest


def load_toxicity(
    source: str | None = None,
    dataset: str = "jigsaw",
    *,
    split: str = "train",
    davidson_label: str = "binary",
) -> Records:
    """Training records `{"text", "labels": {attribute: float}}` from one source; `.info` says which."""
    if dataset not in DATASETS:
        raise DataError(f"unknown toxicity dataset {dataset!r}; expected one of {sorted(DATASETS)}")
    if davidson_label not in ("binary", "share"):
        raise DataError(f"davidson_label must be 'binary' or 'share', got {davidson_label!r}")
    local_hint, _, allowed = DATASETS[dataset]
    res = resolve_source(source or default_source(dataset))
    info = SourceInfo(dataset=dataset, kind=res.kind, source=res.value, split=split)
    if res.kind == "local":
        path = require_file(res.path, f"{dataset} data file")
        info.files.append(str(path))
        flavour, rows = _local_rows(path)
    else:
        ds = load_hub(res.value, split, local_hint=local_hint)
        cols = [c.lower() for c in ds.column_names]
        flavour = detect_flavour(cols)
        if flavour is None:
            raise DataError(f"{res.value}: unrecognised hub columns {cols}; {EXPECTED}")
        rows = ((f"{res.value}: row {i}", {k.lower(): v for k, v in rec.items()}) for i, rec in enumerate(ds))
    if flavour not in allowed:
        raise DataError(f"{info.source}: detected a {flavour!r} file but --dataset {dataset} expects {list(allowed)}")
    info.extra["flavour"] = flavour
    if flavour == "davidson":
        info.extra["davidson_label"] = davidson_label
    records = []
    for where, row in progress(rows, dataset):
        info.read += 1
        rec = _to_record(row, flavour, where, info, davidson_label)
        if rec is not None:
            records.append(rec)
    if info.read == 0:
        raise DataError(f"{info.source}: no data rows; {EXPECTED}")
    if not records:
        raise DataError(f"{info.source}: no usable rows (read {info.read}, skipped {dict(info.skipped)})")
    info.kept = len(records)
    info.log_summary()
    return Records(records, info)
