"""Dress rehearsal of config/paper.yaml: every hub code path of the paper run, offline, on tiny stand-ins.

tests/hub_fixture.py writes a Hugging Face cache in the hub libraries' own layout (what `hf download` leaves on
a login node) holding stand-ins under the exact ids paper.yaml names; the pipeline then runs with
`HF_HUB_OFFLINE=1` and the overlay config/rehearsal.yaml, which changes sizes only. Nothing here mocks a loader:
transformers, datasets, huggingface_hub, torch.hub and Detoxify resolve the ids themselves.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hub_fixture
from helpers_reliability import REPO, bench_env

PAPER = REPO / "config" / "paper.yaml"
OVERLAY = REPO / "config" / "rehearsal.yaml"
# what the rehearsal may change (dotted paths; `*` = any task); everything else must stay paper.yaml's
SIZE_KEYS = {
    "name",
    "work_dir",
    "results_dir",
    "figures_dir",
    "resources",
    "latency",
    "rank",
    "tasks.*.train.*.n_train",
    "tasks.*.train.*.n_heldout",
    "tasks.*.prompts.n",
    "tasks.*.prompts.n_by_type",
    "tasks.*.prompt_sets.*.n",
    "tasks.*.betas",
    "training.max_steps",
    "training.eval_every",
    "training.batch_size",
    "training.max_length",
    "generation.num_samples",
    "generation.max_new_tokens",
    "generation.batch_size",
}
REPO_IDS = {
    ("model", "gpt2"),
    ("model", "gpt2-large"),
    ("model", "gpt2-xl"),
    ("model", "bert-base-uncased"),
    ("model", hub_fixture.SENTIMENT_MODEL),
    ("dataset", hub_fixture.RTP),
    ("dataset", hub_fixture.CIVIL),
    ("dataset", hub_fixture.SST2),
    ("dataset", hub_fixture.AMAZON),
}
PINS = hub_fixture.paper_pins()  # (kind, id) -> the commit paper.yaml pins


def pinned(kind: str, ident: str) -> str:
    """The spec paper.yaml names: `<id>@<commit>` when pinned."""
    return f"{ident}@{PINS[(kind, ident)]}" if (kind, ident) in PINS else ident


PAPER_IDS = {(kind, pinned(kind, ident)) for kind, ident in REPO_IDS}


def test_paper_pins_every_model_it_loads_and_the_data_sets_with_a_known_commit():
    """The models the suite loads itself, and the data sets whose commit is known, are pinned to full commit
    hashes (RTP and Amazon Polarity stay unpinned: no verified hash; Detoxify fetches bert-base-uncased itself)."""
    assert set(PINS) == {
        ("model", "gpt2"),
        ("model", "gpt2-large"),
        ("model", "gpt2-xl"),
        ("model", hub_fixture.SENTIMENT_MODEL),
        ("dataset", hub_fixture.CIVIL),
        ("dataset", hub_fixture.SST2),
    }
    assert all(re.fullmatch(r"[0-9a-f]{40}", c) for c in PINS.values())


@pytest.fixture(scope="module")
def hub(tmp_path_factory, data_root):
    """The stand-in cache (built once per module from the shipped data) and the environment of an offline
    compute node using it."""
    root = tmp_path_factory.mktemp("hubcache")
    folders = hub_fixture.build(root, data_root)
    env = bench_env(hub_fixture.offline_env(folders, root))
    return root, folders, env


def _python(code: str, env: dict) -> dict:
    """Run `code` in a fresh interpreter (the hub libraries read their env at import) and parse its JSON print."""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------- the config
def _merged(*paths: Path) -> dict:
    from bench.config import load_config

    return load_config(*paths)


def _strip_sizes(obj, path=()):
    def matches(p):
        return any(
            len(k.split(".")) == len(p) and all(a in ("*", b) for a, b in zip(k.split("."), p)) for k in SIZE_KEYS
        )

    if isinstance(obj, dict):
        return {k: _strip_sizes(v, path + (k,)) for k, v in obj.items() if not matches(path + (k,))}
    if isinstance(obj, list):
        return [_strip_sizes(v, path + ("*",)) for v in obj]
    return obj


def test_overlay_changes_sizes_only():
    paper, rehearsal = _merged(PAPER), _merged(PAPER, OVERLAY)
    assert _strip_sizes(rehearsal) == _strip_sizes(paper)
    assert rehearsal["tasks"]["toxicity"]["betas"] != paper["tasks"]["toxicity"]["betas"]  # the overlay applied
    assert all(r["gpu"] == 0 for r in rehearsal["resources"].values())


def test_hub_ids_lists_exactly_the_paper_ids():
    res = subprocess.run(
        [sys.executable, "-m", "bench", "hub-ids", "--configfile", str(PAPER)],
        capture_output=True,
        text=True,
        env=bench_env(),
        cwd=REPO,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    rows = [tuple(line.split("\t")) for line in res.stdout.splitlines()]
    from detoxify.detoxify import MODEL_URLS

    assert set(rows) == PAPER_IDS | {("url", MODEL_URLS["original"])} and len(rows) == len(set(rows))


# ----------------------------------------------------------------------------------------------- the stand-ins
def test_stand_ins_load_through_the_hub_libraries(hub):
    root, folders, env = hub
    from huggingface_hub import scan_cache_dir

    cached = {(r.repo_type, r.repo_id) for r in scan_cache_dir(folders["HF_HUB_CACHE"]).repos}
    assert cached == REPO_IDS  # the fixture holds exactly what `bench hub-ids` asks for
    specs = {m: pinned("model", m) for m in ("gpt2", "gpt2-large", "gpt2-xl")}
    out = _python(
        f"""
import json
from detoxify import Detoxify
from bench.errors import ModelError
from bench.metrics.registry import build_scorer
from bench.models.loading import load_causal_lm, load_tokenizer, model_commit
specs = {specs!r}
texts = ["I love this movie", "you are an idiot", "the weather is fine today"]
theirs = Detoxify("original").predict(texts)["toxicity"]
detox = build_scorer("detoxify:original")
sent = build_scorer("hf:{pinned("model", hub_fixture.SENTIMENT_MODEL)}")
models = {{m: [load_causal_lm(s).config.n_layer, len(load_tokenizer(s)), model_commit(s)] for m, s in specs.items()}}
try:
    load_causal_lm("gpt2"); unpinned = "loaded"
except ModelError as e:
    unpinned = str(e)
print(json.dumps({{"ours": detox.score(texts), "theirs": theirs, "detox_version": detox.version,
                  "pos": sent.pos, "labels": sent.model.config.id2label, "sent_version": sent.version,
                  "sent": sent.score(texts), "models": models, "unpinned": unpinned,
                  "tok": load_tokenizer(specs["gpt2"])("Hello world")["input_ids"]}}))
""",
        env,
    )
    # Detoxify's own loader and ours read the same checkpoint and config to the same toxicity scores
    assert out["ours"] == pytest.approx(out["theirs"], abs=1e-6)
    assert out["detox_version"].endswith("/toxic_original-c1212f89.ckpt")
    assert out["labels"] == {"0": "NEGATIVE", "1": "POSITIVE"} and out["pos"] == 1
    snapshot = next(
        (
            folders["HF_HUB_CACHE"]
            / "models--distilbert--distilbert-base-uncased-finetuned-sst-2-english"
            / "snapshots"
        ).iterdir()
    ).name
    assert out["sent_version"].endswith("/" + snapshot)  # the score cache key names the weights it scored with
    assert all(0.0 < p < 1.0 for p in out["sent"])
    assert snapshot == PINS[("model", hub_fixture.SENTIMENT_MODEL)]  # ... the pinned commit
    # each model resolved offline to the commit paper.yaml pins (the cache holds only those snapshots)
    assert out["models"] == {
        m: [n, 50257, PINS[("model", m)]] for m, n in (("gpt2", 2), ("gpt2-large", 3), ("gpt2-xl", 2))
    }
    assert "cannot load" in out["unpinned"]  # no refs/main in the cache: the unpinned id does not resolve
    assert out["tok"] == [15496, 995]  # GPT-2's real BPE ids for "Hello world"


def test_hub_datasets_load_offline_from_the_hub_cache(hub):
    """After `hf download --repo-type dataset`, `datasets` offline reads only its own prepared cache; the loaders
    fall back to the hub-cache snapshot, with the hub datasets' real splits and columns."""
    root, folders, env = hub
    sst2, civil = pinned("dataset", hub_fixture.SST2), pinned("dataset", hub_fixture.CIVIL)
    out = _python(
        """
import json
from bench.data.amazon_polarity import load_amazon_polarity
from bench.data.rtp import load_rtp
from bench.data.sst2 import load_sst2
from bench.data.toxicity import load_toxicity
from bench.errors import DataError
res = {}
prov = lambda r: [r.info.to_json()[k] for k in ("source", "revision", "commit")]
for split in ("train", "validation"):
    r = load_sst2("SST2_SPEC", split); res["sst2_" + split] = [len(r), r.info.kind, sorted({x["label"] for x in r})]
res["sst2_prov"] = prov(r)
try:
    load_sst2("SST2_SPEC", "test"); res["sst2_test"] = "loaded"
except DataError as e:
    res["sst2_test"] = str(e)
try:
    load_sst2("stanfordnlp/sst2", "train"); res["sst2_unpinned"] = "loaded"
except DataError as e:
    res["sst2_unpinned"] = str(e)
for split in ("train", "validation", "test"):
    r = load_toxicity("CIVIL_SPEC", "civil-comments", split=split)
    res["civil_" + split] = [len(r), r.info.extra["flavour"], sorted(r[0]["labels"])]
res["civil_prov"] = prov(r)
for split in ("train", "test"):
    r = load_amazon_polarity("fancyzhx/amazon_polarity", split); res["amazon_" + split] = [len(r), sorted({x["labels"]["positive"] for x in r})]
r = load_rtp("allenai/real-toxicity-prompts", n=10)
res["rtp"] = [len(r), r.info.source, r.info.extra["prompt_set"], sorted(r[0]["perspective"])[:3]]
res["rtp_prov"] = prov(r)
r = load_rtp("nontoxic-10k", n=10)
res["paper_set"] = [r.info.source, r.info.extra["prompt_set"], r.info.extra["requested"]]
r = load_rtp("allenai/real-toxicity-prompts", challenging=True, max_toxicity=None)  # paper.yaml's challenging set
res["rtp_challenging"] = [len(r), all(x["challenging"] for x in r), r.info.extra["prompt_set"]]
print(json.dumps(res))
""".replace("SST2_SPEC", sst2).replace("CIVIL_SPEC", civil),
        env,
    )
    # the sidecar names the pinned spec and the commit read; unpinned, the commit the cache's main pointed to
    assert out["sst2_prov"] == [sst2, PINS[("dataset", hub_fixture.SST2)], PINS[("dataset", hub_fixture.SST2)]]
    assert out["civil_prov"] == [civil, PINS[("dataset", hub_fixture.CIVIL)], PINS[("dataset", hub_fixture.CIVIL)]]
    assert out["rtp_prov"] == [hub_fixture.RTP, None, hub_fixture._commit("dataset", hub_fixture.RTP)]
    assert "could not load" in out["sst2_unpinned"]  # only the pinned snapshot is in the cache
    # the stand-in's 20 challenging rows (+ any challenging row among the first 300 non-toxic ones)
    assert out["rtp_challenging"][0] >= 20 and out["rtp_challenging"][1:] == [True, "rtp-challenging"]
    assert out["sst2_train"] == [300, "hub", [0, 1]] and out["sst2_validation"] == [100, "hub", [0, 1]]
    assert "no usable SST-2 rows" in out["sst2_test"] and "unlabeled" in out["sst2_test"]  # test labels are -1
    attrs = sorted(hub_fixture.CIVIL_COLUMNS)
    assert out["civil_train"] == [347, "civil", attrs] and out["civil_validation"][1:] == ["civil", attrs]
    assert out["amazon_train"] == [240, [0.0, 1.0]] and out["amazon_test"][0] == 60
    assert out["rtp"] == [10, hub_fixture.RTP, "rtp-sample", ["flirtation", "identity_attack", "insult"]]
    # no DExperts file under the data dir: the papers' alias falls back to a hub sample, and says so
    assert out["paper_set"] == [hub_fixture.RTP, "rtp-sample", "nontoxic-10k"]


def test_paper_prompt_set_is_used_when_present(tmp_path, data_root, monkeypatch):
    """`nontoxic-10k` reads DExperts' file from $BENCH_DATA_DIR when it is there (RTP schema lines)."""
    from bench.data.rtp import load_rtp
    from bench.utils.io import iter_jsonl

    shipped = data_root / "rtp" / "decodingtrust_nontoxic.jsonl.gz"
    lines = [json.dumps(rec) for _, rec in iter_jsonl(shipped)][:30]
    (tmp_path / "rtp").mkdir()
    (tmp_path / "rtp" / "nontoxic_prompts-10k.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    recs = load_rtp("nontoxic-10k", n=30)
    assert recs.info.source == str((tmp_path / "rtp" / "nontoxic_prompts-10k.jsonl").resolve())
    assert recs.info.extra["prompt_set"] == "dexperts-nontoxic-10k" and len(recs) == 30
    assert [r["prompt"] for r in recs] == [json.loads(line)["prompt"]["text"] for line in lines]
    direct = load_rtp(str(tmp_path / "rtp" / "nontoxic_prompts-10k.jsonl"), n=30)  # passing its path directly
    assert direct.info.extra["prompt_set"] == "dexperts-nontoxic-10k" and [r["id"] for r in direct] == [
        r["id"] for r in recs
    ]


# ----------------------------------------------------------------------------------------------- the whole DAG
def _expected_outputs(cfg: dict) -> list[str]:
    out = []
    for task in cfg["tasks"]:
        out += [f"{cfg['results_dir']}/tables/{task}.{ext}" for ext in ("csv", "md", "tex")]
        out.append(f"{cfg['figures_dir']}/{task}_tradeoff.png")
    out += [
        f"{cfg['results_dir']}/tables/{n}"
        for n in ("latency.csv", "latency.md", "rank.csv", "rank.md", "rank_spectrum.csv")
    ]
    out += [f"{cfg['figures_dir']}/{n}.png" for n in ("latency", "rank_spectrum", "rank_vs_prefixes")]
    return out


def _dag_rules(workdir: Path, env: dict) -> dict[str, int]:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(workdir),
            "-n",
            "--quiet",
            "rules",
            "--configfile",
            str(PAPER),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    stats = (res.stdout + res.stderr).split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M) if m[1] != "total"}


def _check_run(run_dir: Path, log: str, env: dict) -> None:
    cfg = _merged(PAPER, OVERLAY)
    missing = [p for p in _expected_outputs(cfg) if not (run_dir / p).is_file() or (run_dir / p).stat().st_size == 0]
    assert not missing, f"not written: {missing}\n{log[-4000:]}"
    ran = set(re.findall(r"^(?:local)?rule (\w+):$", log, flags=re.M))
    paper_rules = set(_dag_rules(run_dir.parent / "dag", env))
    assert paper_rules - {"all"} <= ran, f"rules of the paper DAG that did not run: {paper_rules - ran}"
    work = run_dir / cfg["work_dir"]
    for task, parts in (("toxicity", [hub_fixture.CIVIL]), ("sentiment", [hub_fixture.SST2, hub_fixture.AMAZON])):
        for i, hub_id in enumerate(parts):
            side = json.loads((work / "data" / task / f"part{i}.train.jsonl.source.json").read_text())
            assert [(s["kind"], s["source"], s["commit"]) for s in side["sources"]] == [
                (
                    "hub",
                    pinned("dataset", hub_id),
                    PINS.get(("dataset", hub_id), hub_fixture._commit("dataset", hub_id)),
                )
            ]
    rtp_side = json.loads((work / "data" / "prompts" / "rtp.jsonl.source.json").read_text())
    assert (rtp_side["kind"], rtp_side["source"]) == ("hub", hub_fixture.RTP)
    assert rtp_side["commit"] == hub_fixture._commit("dataset", hub_fixture.RTP)  # unpinned: the commit read
    # the models' provenance: the reward trunks' and the base LM's commits (pinned in paper.yaml)
    trunks = {json.loads(p.read_text())["extra"]["backbone_commit"] for p in work.rglob("reward_config.json")}
    assert trunks == {PINS[("model", "gpt2")]}
    metas = [json.loads(p.read_text()) for p in work.rglob("*.jsonl.meta.json")]
    bases = {m["base_commit"] for m in metas if "base_commit" in m}
    assert bases == {PINS[("model", "gpt2-large")]}
    assert rtp_side["extra"]["prompt_set"] in ("rtp-sample", "dexperts-nontoxic-10k")
    import pandas as pd

    tox = pd.read_csv(run_dir / cfg["results_dir"] / "tables" / "toxicity.csv")
    sent = pd.read_csv(run_dir / cfg["results_dir"] / "tables" / "sentiment.csv")
    n_runs = 1 + len(cfg["training"]["parametrizations"]) * len(cfg["tasks"]["toxicity"]["betas"])
    assert len(tox) >= n_runs and tox["avg_max_toxicity"].notna().all() and tox["ppl"].notna().all()
    assert sent["positive_rate"].notna().all() and sent["ppl"].notna().all()
    summaries = [pd.read_csv(p) for p in sorted((work / "scores").rglob("*.csv"))]
    scorers = {str(v) for s in summaries for c in s.columns if "scorer" in c or "fluency" in c for v in s[c]}
    assert any("detoxify:original" in s for s in scorers), scorers
    assert any("distilbert/distilbert-base-uncased-finetuned-sst-2-english" in s for s in scorers), scorers
    assert any("gpt2-xl" in s for s in scorers), scorers


def _snakemake(run_dir: Path, env: dict, *extra: str, timeout: int = 3600) -> tuple[subprocess.CompletedProcess, float]:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(run_dir),
        "--configfile",
        str(PAPER),
        str(OVERLAY),
        *extra,
    ]
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    return res, time.monotonic() - t0


@pytest.mark.slow
def test_paper_dag_runs_offline_on_stand_ins(hub, tmp_path):
    _, _, env = hub
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    res, wall = _snakemake(run_dir, env, "--cores", "2")
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-6000:]
    print(f"\nrehearsal of config/paper.yaml (local, 2 cores): {wall:.0f} s wall", file=sys.stderr)
    _check_run(run_dir, log, env)


@pytest.mark.slow
@pytest.mark.slurm
def test_paper_dag_runs_offline_through_slurm(hub, tmp_path, slurm_cluster):  # noqa: F811 (pytest fixture)
    """The same rehearsal through profiles/slurm: every non-local job is a SLURM job, GPU requests mapped to none."""
    from test_slurm import PROFILE, SUBMITTED

    _, _, env = hub
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    no_gpu = [f"{r}:gpu=0" for r in ("train", "train_distill", "generate", "score")]
    res, wall = _snakemake(run_dir, env, "--profile", str(PROFILE), "--jobs", "4", "--set-resources", *no_gpu)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-6000:]
    print(
        f"\nrehearsal of config/paper.yaml through SLURM: {wall:.0f} s wall, {len(SUBMITTED.findall(log))} SLURM jobs",
        file=sys.stderr,
    )
    assert SUBMITTED.findall(log), "no job was submitted to SLURM"
    _check_run(run_dir, log, env)


from test_slurm import slurm_cluster  # noqa: E402,F401  (the module-scoped local SLURM cluster fixture)
