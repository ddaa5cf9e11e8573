"""Atomic file writing and JSONL helpers.

Every file a step produces is written to a temporary name in the same folder and renamed into place,
so a killed process never leaves a half-written file that a later step (or Snakemake) takes as complete.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.errors import DataError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def staging_dir(target: str | os.PathLike) -> Path:
    """A fresh hidden folder next to `target`, with normal permissions (mkdtemp makes 0700), to fill and then
    rename onto `target` so a folder output appears whole or not at all."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise DataError(f"{path}: cannot create the output folder or file ({exc.strerror or exc})") from exc
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs should get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp_path), str(path)):
            # a failed write (disk full, file-size limit, permissions): name the output, not the temp file
            raise DataError(f"{path}: cannot write ({exc.strerror or exc})") from exc
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temporary file for writing; it replaces `path` when the block exits without error."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def _non_finite_key(obj: Any, where: str = "") -> str | None:
    """Dotted key of the first NaN / Infinity inside `obj` (None when there is none)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "<value>"
    if isinstance(obj, dict):
        for k, v in obj.items():
            found = _non_finite_key(v, f"{where}.{k}" if where else str(k))
            if found:
                return found
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found = _non_finite_key(v, f"{where}[{i}]")
            if found:
                return found
    return None


def dumps_finite(obj: Any, path: str | os.PathLike, line: int | None = None, **kwargs: Any) -> str:
    """`json.dumps` that refuses NaN / Infinity (not JSON; other readers choke on them) with a message naming
    the output file, the record's line and the key; write None (null) where a value is truly undefined."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError as exc:
        key = _non_finite_key(obj)
        if key is None:
            raise
        at = f" line {line}:" if line is not None else ""
        raise DataError(
            f"{path}:{at} key '{key}' is not a finite number; refusing to write NaN/Infinity "
            "(expected a finite number, or null where a value is undefined)"
        ) from exc


def json_text(obj: Any, path: str | os.PathLike) -> str:
    """The suite's JSON file format (sorted keys, indented, finite numbers only) for the output `path`."""
    return dumps_finite(obj, path, indent=2, sort_keys=True, default=str) + "\n"


def write_json(path: str | os.PathLike, obj: Any, into: str | os.PathLike | None = None) -> None:
    """Write `obj` as JSON to `path` atomically; with `into` (a temporary from `atomic_outputs`), write there
    (messages still name `path`)."""
    text = json_text(obj, path)
    if into is not None:
        Path(into).write_text(text, encoding="utf-8")
        return
    with atomic_open(path) as fh:
        fh.write(text)


def write_jsonl(path: str | os.PathLike, records: Iterable[dict], into: str | os.PathLike | None = None) -> int:
    """One JSON object per line, finite numbers only; atomically, or into the temporary `into`."""
    n = 0
    with open(into, "w", encoding="utf-8") if into is not None else atomic_open(path) as fh:
        for rec in records:
            fh.write(dumps_finite(rec, path, line=n + 1, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_json(path: str | os.PathLike, expect: type | None = None) -> Any:
    """Parse a JSON file; with `expect` (e.g. dict), a top-level value of another type is a DataError too."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from exc
    if expect is not None and not isinstance(obj, expect):
        kind = {dict: "a JSON object", list: "a JSON array"}.get(expect, expect.__name__)
        raise DataError(f"{path}: expected {kind} at the top level, got {type(obj).__name__}")
    return obj


def open_binary(path: str | os.PathLike):
    """Open a file for reading bytes, decompressing gzip transparently (by its magic bytes, not its name)."""
    import gzip

    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def iter_binary_lines(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes) of a plain or gzipped file; a corrupt/truncated gzip raises DataError."""
    import gzip
    import zlib

    lineno = 0
    try:
        with open_binary(path) as fh:
            for lineno, raw in enumerate(fh, start=1):
                yield lineno, raw
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path}: line {lineno + 1}: corrupt or truncated gzip data ({exc}); expected a complete .gz file"
        ) from exc


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record) for every non-blank line; malformed lines raise DataError naming the line."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    for lineno, raw in iter_binary_lines(path):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: line {lineno}: not UTF-8 text ({exc.reason})") from exc
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}: line {lineno}: invalid JSON ({exc.msg}); expected one JSON object per line"
            ) from exc
        if not isinstance(rec, dict):
            raise DataError(f"{path}: line {lineno}: expected a JSON object, got {type(rec).__name__}")
        yield lineno, rec


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return [rec for _, rec in iter_jsonl(path)]


def set_output_mode(path: str | os.PathLike) -> None:
    """Give a file written by a library (safetensors, mkstemp: 0600) the mode every other output gets
    (0666 less the umask: 0644 usually)."""
    os.chmod(path, 0o666 & ~_umask())


# ---------------------------------------------------------------------------------- outputs: early + whole
def check_writable(*paths: str | os.PathLike, folders: Sequence[str | os.PathLike] = ()) -> None:
    """Refuse, before any work, outputs that cannot be written: a file output that is an existing folder (or a
    folder output that is a file), a parent path that is a file, or a folder that refuses new files. Probes
    by creating (and removing) a temporary file in the nearest existing folder, which also works for root
    (who ignores permission bits but not an immutable folder or a read-only mount). Creates nothing."""
    items = [(Path(p), False) for p in paths] + [(Path(p), True) for p in folders]
    probed: set[Path] = set()
    for path, is_folder in items:
        if path.exists():
            if path.is_dir() and not is_folder:
                raise DataError(f"{path}: is a folder; expected a file path for this output")
            if is_folder and not path.is_dir():
                raise DataError(f"{path}: is a file; expected a folder path for this output")
        anc = path.parent
        while not anc.exists():
            anc = anc.parent
        if not anc.is_dir():
            raise DataError(f"{anc}: is a file, not a folder; cannot create the output {path}")
        if anc in probed:
            continue
        try:
            fd, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=".tmp", dir=anc)
        except OSError as exc:
            raise DataError(
                f"{anc}: cannot write the output {path} there ({exc.strerror or exc}); expected a writable folder"
            ) from exc
        os.close(fd)
        os.unlink(probe)
        probed.add(anc)


@contextlib.contextmanager
def created_folders(*paths: str | os.PathLike) -> Iterator[None]:
    """Create the parent folders of `paths`; if the block fails, remove those it created that are still
    empty, so a refused command leaves no empty output folder behind."""
    made: list[Path] = []
    for p in paths:
        missing = []
        d = Path(p).parent
        while not d.exists():
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                _remove_empty(made)
                raise DataError(f"{d}: cannot create the output folder ({exc.strerror or exc})") from exc
            made.append(d)
    try:
        yield
    except BaseException:
        _remove_empty(made)
        raise


def _remove_empty(folders: list[Path]) -> None:
    for d in reversed(folders):
        with contextlib.suppress(OSError):
            d.rmdir()  # only succeeds when empty


@contextlib.contextmanager
def atomic_outputs(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Temporary paths for several outputs of one command, renamed onto their targets together once the block
    succeeds (all appear, or none: on an error every temporary, and every folder made for them, is removed)."""
    targets = [Path(p) for p in paths]
    check_writable(*targets)
    with created_folders(*targets):
        temps: list[Path] = []
        try:
            for t in targets:
                try:
                    fd, tmp = tempfile.mkstemp(prefix=f".{t.name}.", suffix=".tmp", dir=t.parent)
                except OSError as exc:
                    raise DataError(f"{t}: cannot write ({exc.strerror or exc})") from exc
                os.close(fd)
                os.chmod(tmp, 0o666 & ~_umask())
                temps.append(Path(tmp))
            try:
                yield temps
            except OSError as exc:  # a write into a temporary failed (disk full, file-size limit): name the output
                failed = [t for tmp, t in zip(temps, targets) if exc.filename in (str(tmp), str(t))]
                if exc.filename is not None and not failed:
                    raise
                raise DataError(
                    f"{', '.join(map(str, failed or targets))}: cannot write ({exc.strerror or exc})"
                ) from exc
            done: list[Path] = []
            for tmp, t in zip(temps, targets):
                try:
                    os.replace(tmp, t)
                except OSError as exc:  # undo the renames already made: none of the outputs stays
                    for d in done:
                        with contextlib.suppress(OSError):
                            d.unlink()
                    raise DataError(f"{t}: cannot write ({exc.strerror or exc})") from exc
                done.append(t)
        finally:
            for tmp in temps:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()


def files_digest(*paths: str | os.PathLike) -> str:
    """Short sha256 over the names and bytes of `paths` (missing ones count as absent): what a resume compares
    to know it continues with the same model or data, whatever the path is called."""
    import hashlib

    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        h.update(f"{p.name}\0".encode())
        if p.is_file():
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        else:
            h.update(b"<absent>")
        h.update(b"\0")
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------- integrity digests
DIGEST_KEY = "sha256"  # the key under which a sidecar / meta file records its artefact's content digest


def sha256_file(path: str | os.PathLike) -> str:
    """Full hex sha256 of a file's bytes (what `sha256sum` prints), read in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_digest(
    path: str | os.PathLike, recorded: Any, recorded_in: str | os.PathLike, error: type[Exception] = DataError
) -> bool:
    """Check that `path` still has the sha256 its writer recorded (in `recorded_in`): bytes flipped, a file
    edited or swapped after it was written is a one-line error naming the file, not a silently different result.
    An artefact written before digests were recorded (`recorded` None) is accepted with a warning; returns
    whether a digest was checked."""
    import logging

    if recorded is None:
        logging.getLogger(__name__).warning(
            "%s: no content digest recorded in %s (written by an older bench); not verified", path, recorded_in
        )
        return False
    if not isinstance(recorded, str) or len(recorded) != 64:
        raise error(f"{recorded_in}: key '{DIGEST_KEY}' = {recorded!r}: expected the 64-hex-digit sha256 of {path}")
    actual = sha256_file(path)
    if actual != recorded:
        raise error(
            f"{path}: content does not match the sha256 recorded in {recorded_in} (recorded {recorded[:12]}..., "
            f"file {actual[:12]}...): changed or corrupted after it was written; regenerate it"
        )
    return True
