"""Sentiment-steering prompts (OpenWebText, the DExperts/RAD evaluation set): neutral, positive and negative
prompt files with field `prompt.text`.

Local: one `<sentiment>_prompts.jsonl` file, or the shipped folder `sentiment_prompts-10k` (then `sentiment`
picks the file). Hub: any data set with a `prompt` column (string or `{text}`), split `train`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bench.data.paths import data_dir
from bench.data.sources import Records, SourceInfo, find_local, load_hub, progress, require_file, resolve_source
from bench.data.splits import finish_prompt_set
from bench.errors import DataError
from bench.utils.io import iter_jsonl

log = logging.getLogger(__name__)

MIRROR = "sentiment_prompts-10k"
SENTIMENTS = ("neutral", "positive", "negative")


def default_source() -> str:
    found = find_local(MIRROR)
    if found is None or not found.is_dir():
        raise DataError(
            f"sentiment prompts: no --source given and the shipped folder {MIRROR!r} was not "
            f"found in {data_dir()}; pass a <sentiment>_prompts.jsonl file"
        )
    return MIRROR


def _infer_sentiment(name: str) -> str | None:
    hits = [s for s in SENTIMENTS if name.lower().startswith(s)]
    return hits[0] if len(hits) == 1 else None


def _convert(rows: Iterable[tuple[str, dict]], info: SourceInfo, sentiment: str) -> list[dict]:
    out = []
    for where, rec in progress(rows, f"{sentiment} prompts"):
        index = info.read
        info.read += 1
        prompt = rec.get("prompt")
        text = prompt.get("text") if isinstance(prompt, dict) else prompt
        if not isinstance(text, str):
            raise DataError(
                f"{where}: expected field 'prompt' with a string 'text' (or a string prompt), "
                f"got {type(prompt).__name__}"
            )
        if not text.strip():
            info.skip("empty_prompt")
            continue
        rec_out = {"id": f"{sentiment}-{index:05d}", "prompt": text, "source": info.source, "sentiment": sentiment}
        if "md5_hash" in rec:
            rec_out["md5_hash"] = rec["md5_hash"]
        out.append(rec_out)
    return out


def load_sentiment_prompts(
    source: str | None = None,
    sentiment: str | None = None,
    *,
    n: int | None = None,
    seed: int = 0,
    allow_fewer: bool = False,
) -> Records:
    """Prompt records `{"id": "<sentiment>-<row>", "prompt", "source", "sentiment"}`.

    Ids use the row index in the file (the files' md5_hash is per document and repeats).
    """
    if sentiment is not None and sentiment not in SENTIMENTS:
        raise DataError(f"sentiment prompts: unknown sentiment {sentiment!r}; expected one of {list(SENTIMENTS)}")
    res = resolve_source(source or default_source())
    if res.kind == "local":
        path = res.path
        if path.is_dir():
            if sentiment is None:
                raise DataError(f"{path}: a folder of prompt files needs --sentiment ({'|'.join(SENTIMENTS)})")
            path = find_local(path / f"{sentiment}_prompts.jsonl") or path / f"{sentiment}_prompts.jsonl"
        require_file(path, "sentiment prompt file")
        inferred = _infer_sentiment(path.name)
        if sentiment is None:
            if inferred is None:
                raise DataError(f"{path}: cannot tell the prompts' sentiment from the file name; pass --sentiment")
            sentiment = inferred
        elif inferred is not None and inferred != sentiment:
            raise DataError(f"{path}: file name says {inferred!r} prompts but --sentiment is {sentiment!r}")
        info = SourceInfo(dataset="sentiment-prompts", kind="local", source=str(path), files=[str(path)])
        rows = ((f"{path}: line {ln}", rec) for ln, rec in iter_jsonl(path))
    else:
        if sentiment is None:
            raise DataError(f"{res.value}: hub prompt sets need --sentiment ({'|'.join(SENTIMENTS)})")
        info = SourceInfo(dataset="sentiment-prompts", kind="hub", source=res.value, split="train")
        ds = load_hub(res.value, "train", local_hint=f"{MIRROR}/{sentiment}_prompts.jsonl")
        rows = ((f"{res.value}: row {i}", rec) for i, rec in enumerate(ds))
    info.extra.update(sentiment=sentiment, seed=seed, n=n)
    records = _convert(rows, info, sentiment)
    return finish_prompt_set(
        records,
        info,
        n=n,
        seed=seed,
        allow_fewer=allow_fewer,
        expected="JSONL records with prompt.text",
        none_left=f"every prompt was empty (read {info.read})",
        what=f"{sentiment} prompts from {info.source}",
    )
