"""Pinned hub revisions: `<hub id>@<revision>` in any model spec or data source, and the commit a cache holds.

A hub id in a config or on a command line may end in `@<revision>` (`gpt2-large@32b71b12...`,
`google/civil_comments@f2970eb3...`): a full 40-hex commit hash, or a branch / tag name. The spec string
travels unchanged from the config through Snakemake to each command, so the revision is used wherever the
id is (download, offline cache lookup) and appears in every provenance record that names the spec.
`REVISION_PATTERN` is the one definition; the config schema repeats it (workflow/schemas/config.schema.yaml,
`$defs.hub_spec`), a test keeps the two equal.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.errors import ConfigError

# a full commit hash, or a branch / tag name that is not all hex digits (a short hash is refused: the hub
# resolves full hashes only)
REVISION_PATTERN = r"[0-9a-f]{40}|(?![0-9a-f]+$)[A-Za-z0-9][A-Za-z0-9._-]*"
_REVISION = re.compile(rf"^(?:{REVISION_PATTERN})$")


def split_revision(spec: str) -> tuple[str, str | None]:
    """`id@rev` -> (id, rev); a spec without `@` -> (spec, None). A malformed revision raises ConfigError."""
    spec = str(spec)
    if "@" not in spec:
        return spec, None
    ident, _, rev = spec.rpartition("@")
    if not ident or not _REVISION.match(rev):
        raise ConfigError(
            f"{spec!r}: expected <hub id>@<revision>, the revision a full 40-hex commit hash or a "
            f"branch / tag name (a short hash is not resolved by the hub)"
        )
    return ident, rev


def cached_commit(repo_id: str, revision: str | None = None, repo_type: str = "model") -> str | None:
    """The commit of the snapshot the local hub cache holds for `repo_id` at `revision` (default branch when
    None), or None when it holds none. Works offline: it reads `refs/` and `snapshots/` only."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, repo_type=repo_type, revision=revision, local_files_only=True)).name
    except Exception:  # not cached, or an id huggingface_hub rejects
        return None


def provenance(spec: str, repo_type: str = "model") -> dict:
    """What a hub spec resolved to, for a run's records: {"id", "revision", "commit"} (commit None when the cache
    has no snapshot, e.g. a local folder or a spec that is not a hub id)."""
    ident, rev = split_revision(spec)
    return {"id": ident, "revision": rev, "commit": cached_commit(ident, rev, repo_type)}
