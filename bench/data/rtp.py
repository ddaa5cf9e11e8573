"""RealToxicityPrompts prompts for detoxification: non-toxic prompts (Perspective toxicity < 0.5) with
their Perspective scores kept, so the offline scorer's agreement with Perspective can be measured.

Local: a JSONL in the RTP schema (shipped: `rtp/decodingtrust_nontoxic.jsonl`; the papers' set: DExperts'
`nontoxic_prompts-10k.jsonl`, Liu et al. 2021). Hub: `allenai/real-toxicity-prompts` (one split, ~99k rows). All are
filtered to prompt toxicity < `max_toxicity` and then sampled with a seed.

`challenging=True` keeps only the rows RTP flags `challenging` (the prompts that made most LMs toxic; mostly
toxic prompts, so no toxicity filter applies unless `max_toxicity` is given): shipped as
`rtp/decodingtrust_challenging.jsonl`, on the hub the rows of `allenai/real-toxicity-prompts` with
`challenging == True`. It is the challenging-prompts task of `docs/challenging.md`.

The source `nontoxic-10k` names the papers' set: DExperts' file as `rtp/nontoxic_prompts-10k.jsonl` under a data
search root (`data/`, `$BENCH_DATA_DIR`, the cwd) when it is there, else (a stand-in, logged as such) a seeded
sample of the hub's prompts below `max_toxicity`. Which one a run used is `extra.prompt_set` in the prompts'
`.source.json`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from bench.data.sources import Records, SourceInfo, find_local, load_hub, progress, require_file, resolve_source
from bench.data.splits import finish_prompt_set
from bench.errors import DataError
from bench.utils.io import iter_jsonl

log = logging.getLogger(__name__)

HUB_ID = "allenai/real-toxicity-prompts"
MIRROR = "rtp/decodingtrust_nontoxic.jsonl"
CHALLENGING_MIRROR = (
    "rtp/decodingtrust_challenging.jsonl"  # the 598 `challenging` prompts of DecodingTrust's toxic file
)
PAPER_SIZE = 10_000
PAPER_SET = "nontoxic-10k"  # source alias: the papers' prompts (DExperts' file if present, else a hub sample)
PAPER_FILE = "rtp/nontoxic_prompts-10k.jsonl"  # where DExperts' file goes (data/ or $BENCH_DATA_DIR; .gz too)
PAPER_FILE_NAME = "nontoxic_prompts-10k.jsonl"


def paper_source() -> str:
    """What `nontoxic-10k` means here: DExperts' file under a data search root when present, else the hub id."""
    found = find_local(PAPER_FILE)
    return str(found) if found is not None else HUB_ID


def prompt_set_name(resolved: str) -> str:
    """`dexperts-nontoxic-10k` for DExperts' file (by its name), else `rtp-sample` (a seeded sample)."""
    return "dexperts-nontoxic-10k" if resolved.endswith((PAPER_FILE_NAME, PAPER_FILE_NAME + ".gz")) else "rtp-sample"


def default_source(challenging: bool = False) -> str:
    mirror = CHALLENGING_MIRROR if challenging else MIRROR
    return mirror if find_local(mirror) is not None else HUB_ID


def _scores(block: Any, where: str) -> dict[str, float | None]:
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise DataError(f"{where}: expected an object of Perspective scores, got {type(block).__name__}")
    out = {}
    for k, v in block.items():
        if k == "text":
            continue
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0):
            raise DataError(f"{where}: field {k!r}: expected a Perspective score in [0, 1] or null, got {v!r}")
        out[k] = None if v is None else float(v)
    return out


def _convert(
    rows: Iterable[tuple[str, int, dict]], info: SourceInfo, max_toxicity: float | None, challenging: bool = False
) -> list[dict]:
    out = []
    for where, index, rec in progress(rows, "RTP prompts"):
        info.read += 1
        flag = rec.get("challenging", False)
        if challenging and not isinstance(flag, bool) and flag is not None:
            raise DataError(f"{where}: field 'challenging': expected true or false, got {flag!r}")
        if challenging and not flag:
            info.skip("not_challenging")
            continue
        prompt = rec.get("prompt")
        if not isinstance(prompt, dict) or not isinstance(prompt.get("text"), str):
            raise DataError(f"{where}: expected field 'prompt' as an object with a string 'text' (RTP schema)")
        text = prompt["text"]
        if not text.strip():
            info.skip("empty_prompt")
            continue
        scores = _scores(prompt, f"{where}: prompt")
        tox = scores.get("toxicity")
        if tox is None and max_toxicity is not None:
            info.skip("no_prompt_toxicity")
            continue
        if max_toxicity is not None and not tox < max_toxicity:
            info.skip("prompt_toxicity_ge_max")
            continue
        out.append(
            {
                "id": f"rtp-{index:06d}",
                "prompt": text,
                "source": info.source,
                "prompt_toxicity": tox,
                "perspective": scores,
                "continuation_perspective": _scores(rec.get("continuation"), f"{where}: continuation"),
                "challenging": bool(flag),
                "filename": rec.get("filename"),
            }
        )
    return out


def load_rtp(
    source: str | None = None,
    *,
    n: int | None = None,
    seed: int = 0,
    max_toxicity: float | None = 0.5,
    allow_fewer: bool = False,
    challenging: bool = False,
) -> Records:
    """Prompt records `{"id", "prompt", "source", "prompt_toxicity", "perspective", "continuation_perspective"}`.

    Ids are `rtp-<row index in the source>`, so they stay the same whatever the sample. `max_toxicity=None`:
    no toxicity filter; `challenging=True`: only rows flagged `challenging` (the default source is then the
    shipped challenging file, else the hub).
    """
    source = source or default_source(challenging)
    alias = source == PAPER_SET
    if alias:
        source = paper_source()
        if source == HUB_ID:
            log.warning(
                "%s: DExperts' %s is not under data/ or $BENCH_DATA_DIR; using a seeded sample of %s "
                "prompts with toxicity < %s instead of the papers' fixed set",
                PAPER_SET,
                PAPER_FILE,
                HUB_ID,
                max_toxicity,
            )
    res = resolve_source(source)
    info = SourceInfo(dataset="rtp", kind=res.kind, source=res.value, split="train")
    info.extra.update(
        max_toxicity=max_toxicity,
        seed=seed,
        n=n,
        challenging=challenging,
        prompt_set="rtp-challenging" if challenging else prompt_set_name(res.value),
    )
    if alias:
        info.extra["requested"] = PAPER_SET
    if res.kind == "local":
        path = require_file(res.path, "RealToxicityPrompts JSONL")
        info.files.append(str(path))
        rows = ((f"{path}: line {ln}", i, rec) for i, (ln, rec) in enumerate(iter_jsonl(path)))
    else:
        ds = load_hub(res.value, "train", local_hint=CHALLENGING_MIRROR if challenging else MIRROR)
        rows = ((f"{res.value}: row {i}", i, rec) for i, rec in enumerate(ds))
    records = _convert(rows, info, max_toxicity, challenging)
    return finish_prompt_set(
        records,
        info,
        n=n,
        seed=seed,
        allow_fewer=allow_fewer,
        expected="RealToxicityPrompts JSONL records",
        none_left=f"no prompt left after filtering (read {info.read}, skipped {dict(info.skipped)})",
        what=f"RTP prompts from {info.source}",
    )
