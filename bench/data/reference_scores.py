"""Reference scores an offline toxicity scorer is compared with (`bench agreement`): the Perspective scores
that RealToxicityPrompts rows carry, and Jigsaw comments' binary human labels."""

from __future__ import annotations

from pathlib import Path

from bench.errors import DataError


def read_rtp_perspective(path: Path, max_rows: int | None) -> dict[str, tuple[list[str], list[float]]]:
    """{'prompts': (texts, perspective toxicity), 'continuations': (...)}; rows without a score are skipped."""
    from bench.utils.io import iter_jsonl

    out: dict[str, tuple[list[str], list[float]]] = {"prompts": ([], []), "continuations": ([], [])}
    n = 0
    for lineno, rec in iter_jsonl(path):
        for key, part in (("prompts", "prompt"), ("continuations", "continuation")):
            item = rec.get(part)
            if not isinstance(item, dict) or "text" not in item:
                raise DataError(f"{path}: line {lineno}: missing '{part}.text' (RealToxicityPrompts schema)")
            tox = item.get("toxicity")
            if tox is not None:
                out[key][0].append(item["text"])
                out[key][1].append(float(tox))
        n += 1
        if max_rows and n >= max_rows:
            break
    return out


def read_jigsaw_binary(path: Path, max_rows: int | None) -> tuple[list[str], list[int]]:
    import numpy as np
    import pandas as pd

    if not path.exists():
        raise DataError(f"{path}: file not found")
    df = pd.read_csv(path, header=None, names=["comment_text", "toxic"], keep_default_na=False)
    bad = ~df["toxic"].astype(str).isin(["0", "1"])
    if bad.any():
        raise DataError(f"{path}: row {int(bad.idxmax()) + 1}: column 2 must be 0/1 (comment_text,toxic; no header)")
    if max_rows and max_rows < len(df):  # the file is sorted by label: take evenly spaced rows, not the head
        df = df.iloc[np.linspace(0, len(df) - 1, max_rows).round().astype(int)]
    return df["comment_text"].astype(str).tolist(), df["toxic"].astype(int).tolist()


def read_davidson_binary(path: Path, max_rows: int | None, seed: int = 0) -> tuple[list[str], list[int]]:
    """Davidson et al. tweets: 1 = hate speech or offensive (class 0/1), 0 = neither; a seeded sample of
    `max_rows` rows (in file order) when given."""
    from bench.data.splits import sample_records
    from bench.data.toxicity import load_toxicity

    recs = list(load_toxicity(str(path), "davidson"))
    if max_rows and max_rows < len(recs):
        recs = sample_records(recs, max_rows, seed=seed)
    return [r["text"] for r in recs], [int(r["labels"]["toxicity"] >= 0.5) for r in recs]


def read_sst2_labels(path: Path, max_rows: int | None) -> tuple[list[str], list[int]]:
    """SST-2 sentences with 1 = positive (the GLUE TSV); the first `max_rows` when given."""
    from bench.data.sst2 import load_sst2

    recs = list(load_sst2(str(path), "dev"))
    if max_rows:
        recs = recs[:max_rows]
    return [r["text"] for r in recs], [int(r["label"]) for r in recs]
