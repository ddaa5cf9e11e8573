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
