"""Resolve a data source string to a local file or a Hugging Face hub id, and record what was used.

Every loader accepts the same kind of string: an existing path (absolute, or relative to one of
`bench.data.paths.search_roots()`: the shipped `data/`, `$BENCH_DATA_DIR`, the working directory) is read
locally -- `name` also finds a compressed `name.gz` --; anything else is a hub id loaded with
`datasets.load_dataset`, pinned when it ends in `@<revision>` (`bench.utils.hub`; the sidecar records the
revision and the commit that was read). Compressed files (`.gz`) are read transparently. Loaders return a `Records` list that carries a `SourceInfo` (which source, how many
rows were read / kept / skipped and why), so a command can write it next to its output.
"""

from __future__ import annotations

import codecs
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.data.paths import data_dir, search_roots
from bench.errors import DataError
from bench.utils.hub import cached_commit, split_revision
from bench.utils.io import iter_binary_lines

log = logging.getLogger(__name__)

# Suffixes that mark a source string as a file the user meant (so a typo gives "file not found",
# not a confusing hub error).
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt", ".gz")


@dataclass
class SourceInfo:
    """Which source a loader read and what it did with the rows; serialised to `<out>.source.json`."""

    dataset: str
    kind: str  # "local" | "hub"
    source: str  # absolute path or hub id
    split: str | None = None
    files: list[str] = field(default_factory=list)
    read: int = 0
    kept: int = 0
    available: int | None = None  # rows that passed the filters, before seeded sampling
    skipped: Counter = field(default_factory=Counter)
    extra: dict[str, Any] = field(default_factory=dict)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "kind": self.kind,
            "source": self.source,
            "split": self.split,
            "files": list(self.files),
            "read": self.read,
            "kept": self.kept,
            **({"available": self.available} if self.available is not None else {}),
            "skipped": dict(sorted(self.skipped.items())),
            **({"extra": self.extra} if self.extra else {}),
            **(hub_provenance(self.source) if self.kind == "hub" else {}),
        }

    def log_summary(self) -> None:
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) or "none"
        sampled = ""
        if self.available not in (None, self.kept):
            sampled = f" (sampled from {self.available} that passed the filters)"
        log.info(
            "%s: read %d rows from %s %s%s; kept %d%s; skipped: %s",
            self.dataset,
            self.read,
            self.kind,
            self.source,
            f" (split {self.split})" if self.split else "",
            self.kept,
            sampled,
            skipped,
        )


class Records(list):
    """A plain list of record dicts that also carries the `SourceInfo` of where it came from."""

    def __init__(self, items=(), info: SourceInfo | None = None):
        super().__init__(items)
        self.info = info


@dataclass(frozen=True)
class Resolved:
    kind: str  # "local" | "hub"
    value: str  # absolute path or hub id

    @property
    def path(self) -> Path:
        return Path(self.value)


def _looks_like_path(source: str) -> bool:
    return (
        source.startswith(("/", "./", "../", "~"))
        or source.lower().endswith(FILE_SUFFIXES)
        or source.count("/") > 1  # hub ids have at most one slash
    )


def data_suffix(path: str | os.PathLike) -> str:
    """The suffix that says a file's format, ignoring a compression `.gz` (`x.jsonl.gz` -> `.jsonl`)."""
    path = Path(path)
    if path.suffix.lower() == ".gz":
        path = path.with_suffix("")
    return path.suffix.lower()


def find_local(source: str | os.PathLike, extra_root: str | os.PathLike | None = None) -> Path | None:
    """The existing file/folder a source names, or None: as given, else under each search root in order.

    `name` also matches a compressed `name.gz` (the shipped data are gzipped; configs may name either).
    """
    cand = Path(str(source).strip()).expanduser()
    places = [cand] if cand.is_absolute() else [root / cand for root in search_roots(extra_root)]
    for place in places:
        for path in (place, place.with_name(place.name + ".gz")):
            if path.exists():
                return path.resolve()
    return None


def resolve_source(source: str | os.PathLike, extra_root: str | os.PathLike | None = None) -> Resolved:
    """An existing path (as given, or under a search root) is local; otherwise a hub id.

    A string that clearly names a file (a path prefix or a data-file suffix) but does not exist raises a
    DataError naming every place that was searched. This is the one resolver: the Snakefile uses it too.
    """
    text = str(source).strip()
    if not text:
        raise DataError("empty data source: expected a file path or a Hugging Face hub id")
    found = find_local(text, extra_root)
    if found is not None:
        return Resolved("local", str(found))
    if _looks_like_path(text):
        where = (
            ""
            if Path(text).expanduser().is_absolute()
            else " (looked in " + ", ".join(str(r) for r in search_roots(extra_root)) + ")"
        )
        raise DataError(
            f"{text}: file not found{where}; expected an existing local file/folder or a Hugging Face hub id"
        )
    return Resolved("hub", text)


def progress(rows: Iterable, desc: str, total: int | None = None) -> Iterable:
    """A tqdm bar over data rows (shown only on a terminal; big hub sets take a while)."""
    from tqdm.auto import tqdm

    return tqdm(rows, desc=desc, total=total, unit=" rows", disable=None, mininterval=1.0, leave=False)


def require_file(path: Path, what: str = "data file") -> Path:
    if not path.exists():
        raise DataError(f"{path}: {what} not found")
    if path.is_dir():
        raise DataError(f"{path}: expected a {what}, got a directory")
    return path


def iter_text_lines(path: Path) -> Iterator[str]:
    """Decode a file line by line as UTF-8 (BOM tolerated); a bad byte raises DataError naming the line."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
    for lineno, raw in iter_binary_lines(require_file(path)):
        try:
            yield decoder.decode(raw)
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: line {lineno}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


# hub spec -> the commit `load_hub` read in this process (what the sidecar of its output records)
_READ_COMMITS: dict[str, str] = {}


def hub_provenance(spec: str) -> dict[str, Any]:
    """{"revision": pinned or None, "commit": the commit read (None if unknown)} of a hub data set spec."""
    ident, rev = split_revision(spec)
    return {"revision": rev, "commit": _READ_COMMITS.get(spec) or cached_commit(ident, rev, "dataset")}


def _commit_of(ds, hub_id: str) -> str | None:
    """The commit `datasets` resolved: its data-file URLs read `hf://datasets/<id>@<commit>/...`."""
    import re

    checksums = getattr(getattr(ds, "info", None), "download_checksums", None) or {}
    for url in checksums:
        m = re.search(rf"{re.escape(hub_id)}@([0-9a-f]{{40}})/", str(url))
        if m:
            return m.group(1)
    return None


def load_hub(hub_id: str, split: str, *, config: str | None = None, local_hint: str | None = None, **kwargs):
    """`datasets.load_dataset(hub_id, config, split=split)` with an actionable error when it fails.

    `hub_id` may end in `@<revision>` (loaded at that revision; the commit read is remembered for the sidecar).
    The common failure here is no network: the message says the hub could not be reached and names the local
    mirror file to use instead.
    """
    spec = hub_id
    hub_id, revision = split_revision(spec)
    if revision:
        kwargs["revision"] = revision
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a hard dependency in practice
        raise DataError(f"{hub_id}: loading hub data sets needs the `datasets` package ({exc})") from exc
    log.info("loading hub data set %s%s split=%s", hub_id, f" ({config})" if config else "", split)
    try:
        args = (hub_id, config) if config else (hub_id,)
        try:
            ds = datasets.load_dataset(*args, split=split, **kwargs)
            commit = _commit_of(ds, hub_id) or cached_commit(hub_id, revision, "dataset")
        except Exception:
            snapshot = hub_cache_snapshot(hub_id, revision)
            if snapshot is None:
                raise
            # offline, `datasets` reads only its own prepared cache, not the files `hf download` put in the
            # hub cache; the snapshot folder holds the repo's card (configs, splits) and data files
            log.info("%s: not reachable; reading its hub-cache snapshot %s", spec, snapshot)
            kwargs.pop("revision", None)  # the snapshot folder is that revision
            ds = datasets.load_dataset(str(snapshot), *args[1:], split=split, **kwargs)
            commit = snapshot.name
        if commit:
            _READ_COMMITS[spec] = commit
        return ds
    except Exception as exc:  # network, auth, unknown id, unknown split: all end here
        if local_hint:
            hint = f" Use a local file instead, e.g. --source {local_hint} (shipped in {data_dir()})."
        else:
            hint = " Pass a local file instead (a path, absolute or relative to data/ or $BENCH_DATA_DIR)."
        raise DataError(
            f"{spec}: could not load this Hugging Face hub data set (split {split!r}): "
            f"the hub could not be reached or the id/split{'/revision' if revision else ''} does not exist "
            f"[{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}].{hint}"
        ) from exc


def hub_cache_snapshot(hub_id: str, revision: str | None = None) -> Path | None:
    """The local snapshot folder of a hub data set in `HF_HUB_CACHE` (filled by `hf download --repo-type
    dataset [--revision R]`) at `revision` (default branch when None), or None when the cache has none."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(hub_id, repo_type="dataset", revision=revision, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError), or an id huggingface_hub rejects
        return None
