"""Reliability, round 3 (issue 29), one section per kind of gap:
1. a check that says OK has checked everything the run uses (extra_args, duplicate YAML keys, folder sources);
2. artefacts prove their integrity (weights, prepared prompts, generations, scores: sha256 written, verified);
3. every stage accepts what the suite itself writes, or refuses it at the boundary with a message;
4. empty / degenerate content is an explicit result (n_empty) or a named error;
5. resource faults (full disk, unwritable cache) end in one line naming the path, leaving no fake progress.
"""

from __future__ import annotations

import csv
import errno
import json
import logging
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import ConfigError, DataError, ModelError
from tests.helpers_reliability import REPO, TINY_GPT2, bench_cmd, bench_env, make_reward_folder, temp_leftovers


def _cfg(**changes):
    from bench.config import read_yaml

    cfg = read_yaml(REPO / "config" / "test.yaml")
    for dotted, value in changes.items():
        node = cfg
        *path, last = dotted.split("/")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return cfg


# ============================================================================ 1. checks that check everything
@pytest.mark.parametrize(
    "key, value, expect",
    [
        ("generation/extra_args", "--bogus 1", "--bogus"),
        ("generation/extra_args", "--num-samples 0", "--num-samples"),
        ("generation/extra_args", "--out elsewhere.jsonl", "--out is set by the pipeline"),
        ("generation/extra_args", "'--seed 1", "cannot split"),
        ("scoring/extra_args", "--n-boot zero", "--n-boot"),
        ("scoring/extra_args", "--cache /tmp/other.sqlite", "--cache is set by the pipeline"),
        ("training/extra_args", "--distill-k two", "--distill-k"),
        ("training/overrides/arm-distill/extra_args", "--no-such-flag", "--no-such-flag"),
        ("tasks/toxicity/training/extra_args", "--schedule sideways", "--schedule"),
        ("agreement/args", "--frobnicate", "--frobnicate"),
    ],
)
def test_extra_args_are_parsed_by_the_commands_own_parser(key, value, expect):
    from bench.config import validate_config

    with pytest.raises(ConfigError) as err:
        validate_config(_cfg(**{key: value}))
    msg = str(err.value)
    assert f"key '{key.replace('/', '.')}'" in msg and expect in msg and "\n" not in msg


def test_valid_extra_args_pass():
    from bench.config import load_config, validate_config

    cfg = validate_config(
        _cfg(
            **{
                "generation/extra_args": "--seed 3 --max-prompts 2",
                "scoring/extra_args": "--n-boot 50",
                "training/overrides/arm-distill/extra_args": "--distill-k 2 --eval-size 100",
            }
        )
    )
    assert cfg["generation"]["extra_args"] == "--seed 3 --max-prompts 2"
    for name in ("default", "study", "test", "paper"):  # every shipped config still validates
        load_config(REPO / "config" / f"{name}.yaml")


@pytest.mark.parametrize(
    "key, value",
    [
        ("toxicity_scorer", "profanity"),
        ("toxicity_scorer", "vader"),
        ("toxicity_scorer", "perspective:x"),
        ("sentiment_scorer", "tfidf-sst2:"),
        ("sentiment_scorer", "detoxify:original"),
    ],
)
def test_scorer_specs_are_checked_before_the_run(key, value):
    from bench.config import validate_config

    with pytest.raises(ConfigError, match=rf"key 'scoring.{key}' = '{value}': expected one of"):
        validate_config(_cfg(**{f"scoring/{key}": value}))
    for ok in ("detoxify", "jigsaw-bilstm-tcc") if key == "toxicity_scorer" else ("vader", "hf:some/model"):
        validate_config(_cfg(**{f"scoring/{key}": ok}))


def test_duplicate_yaml_keys_are_refused_naming_file_and_line(tmp_path):
    from bench.config import load_config, load_schema

    text = (REPO / "config" / "test.yaml").read_text()
    assert "\ngeneration:\n" in text
    dup = tmp_path / "dup.yaml"
    lines = text.splitlines()
    at = lines.index("generation:")
    dup.write_text("\n".join(lines[: at + 1] + ["  num_samples: 2", "  num_samples: 3"] + lines[at + 1 :]) + "\n")
    with pytest.raises(
        ConfigError,
        match=rf"{dup}, line {at + 3}, column 3: .*duplicate key 'num_samples' "
        rf"\(first given on line {at + 2}\)",
    ):
        load_config(dup)
    top = tmp_path / "top.yaml"
    top.write_text(text + "\nname: other\n")
    with pytest.raises(ConfigError, match="duplicate key 'name'"):
        load_config(top)
    assert "parametrization" in load_schema()["$defs"]  # merge keys (<<: *anchor) are not duplicates


@pytest.mark.slow
@pytest.mark.parametrize("case", ["duplicate-key", "unknown-extra-arg"])
def test_snakemake_refuses_before_the_first_job(tmp_path, case):
    """What `bench check-config` refuses, `snakemake -n` refuses too, naming the file and key."""
    over = tmp_path / "over.yaml"
    if case == "duplicate-key":
        over.write_text("seed: 1\nseed: 2\n")
        expect = [f"{over}, line 2", "duplicate key 'seed'"]
    else:
        over.write_text('generation: {extra_args: "--bogus-flag"}\n')
        expect = ["generation.extra_args", "--bogus-flag"]
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "-n",
            "--directory",
            str(tmp_path),
            "--configfile",
            str(REPO / "config" / "test.yaml"),
            str(over),
        ],
        cwd=tmp_path,
        env=bench_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0 and all(e in out for e in expect), out[-2000:]
    assert not (tmp_path / "runs").exists()
    chk = subprocess.run(
        bench_cmd("check-config", REPO / "config" / "test.yaml", over),
        cwd=tmp_path,
        env=bench_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert chk.returncode == 2 and all(e in chk.stderr for e in expect), chk.stderr


def test_data_sources_resolved_before_the_run(tmp_path, data_root):
    from bench.config import check_sources, validate_config

    check_sources(validate_config(_cfg()))  # the test config's sources exist
    folder = _cfg()
    folder["tasks"]["toxicity"]["train"][0]["source"] = "jigsaw"  # the shipped folder, not a file
    with pytest.raises(
        ConfigError,
        match=r"key 'tasks.toxicity.train\[0\].source' = 'jigsaw': .*jigsaw is a "
        r"folder; expected a jigsaw data file",
    ):
        check_sources(validate_config(folder))
    ok = _cfg()
    ok["tasks"]["sentiment"]["train"][0]["source"] = "sst2"  # sst2 reads its shipped folder: allowed
    check_sources(validate_config(ok))
    missing = _cfg(**{"scoring/sentiment_classifier/dev": "sst2/nope.tsv.gz"})
    with pytest.raises(ConfigError, match="key 'scoring.sentiment_classifier.dev'"):
        check_sources(validate_config(missing))


# ============================================================================ 2. integrity digests
def _flip_byte(path: Path, offset_from_end: int = 7) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))


def test_reward_weights_with_flipped_bytes_are_refused(tmp_path, caplog):
    from safetensors.torch import load_file

    from bench.rewards.registry import WEIGHTS_DIGEST_KEY, load_reward_model

    rm = make_reward_folder(tmp_path / "rad")
    cfg = json.loads((rm / "reward_config.json").read_text())
    import hashlib

    assert cfg[WEIGHTS_DIGEST_KEY] == hashlib.sha256((rm / "model.safetensors").read_bytes()).hexdigest()
    load_reward_model(rm)
    size = (rm / "model.safetensors").stat().st_size
    _flip_byte(rm / "model.safetensors")  # a bit of the last tensor's data: same size, still parseable
    assert (rm / "model.safetensors").stat().st_size == size
    load_file(str(rm / "model.safetensors"))  # safetensors alone would load it
    with pytest.raises(
        ModelError,
        match=rf"{rm / 'model.safetensors'}: content does not match the sha256 "
        rf"recorded in {rm / 'reward_config.json'}",
    ):
        load_reward_model(rm)
    # a folder written before digests existed still loads, with a warning
    del cfg[WEIGHTS_DIGEST_KEY]
    (rm / "reward_config.json").write_text(json.dumps(cfg))
    with caplog.at_level(logging.WARNING):
        load_reward_model(rm)
    assert "no content digest recorded" in caplog.text


@pytest.fixture(scope="module")
def gens(tmp_path_factory):
    """Generations the suite writes: plain with and without --task, and reward-guided (rad)."""
    from bench.cli import main

    root = tmp_path_factory.mktemp("gens")
    prompts = root / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"id": f"p{i}", "prompt": f"The story number {i} is"}) + "\n" for i in range(3))
    )
    rm = make_reward_folder(root / "rad")
    common = [
        "--base",
        TINY_GPT2,
        "--prompts",
        str(prompts),
        "--num-samples",
        "2",
        "--max-new-tokens",
        "3",
        "--top-k",
        "5",
        "--device",
        "cpu",
    ]
    out = {}
    for name, extra in (
        ("plain-notask", []),
        ("plain", ["--task", "toxicity"]),
        ("rad", ["--task", "toxicity", "--reward", str(rm), "--beta", "2"]),
    ):
        out[name] = root / f"{name}.jsonl"
        assert main(["generate", *common, "--out", str(out[name]), *extra]) == 0
    return out


def _copy_gen(src: Path, dst_dir: Path, name: str = "g.jsonl") -> Path:
    dst = dst_dir / name
    dst.write_bytes(src.read_bytes())
    Path(f"{dst}.meta.json").write_bytes(Path(f"{src}.meta.json").read_bytes())
    return dst


def _score(gen: Path, out: Path, metrics: str = "toxicity,diversity", *extra: str) -> int:
    from bench.cli import main

    return main(
        [
            "score",
            "--generations",
            str(gen),
            "--metrics",
            metrics,
            "--fluency-model",
            TINY_GPT2,
            "--sentiment-scorer",
            "vader",
            "--out-scores",
            str(out.with_suffix(".jsonl")),
            "--out-summary",
            str(out.with_suffix(".csv")),
            "--n-boot",
            "10",
            "--device",
            "cpu",
            *extra,
        ]
    )


def test_generations_digest_written_and_verified_by_score(gens, tmp_path, caplog):
    from bench.utils.io import sha256_file

    meta = json.loads(Path(f"{gens['plain']}.meta.json").read_text())
    assert meta["sha256"] == sha256_file(gens["plain"])
    g = _copy_gen(gens["plain"], tmp_path)
    text = g.read_text()
    g.write_text(text.replace('"p1"', '"p7"', 1))  # same size, still valid JSONL: another prompt's id
    with caplog.at_level(logging.ERROR):
        assert _score(g, tmp_path / "s") == 2
    assert f"{g}: content does not match the sha256 recorded in {g}.meta.json" in caplog.text
    assert not (tmp_path / "s.csv").exists()


def test_prepared_prompts_digest_verified_by_generate(tmp_path, data_root, caplog):
    from bench.cli import main

    prompts = tmp_path / "rtp.jsonl"
    assert main(["prepare", "prompts", "--dataset", "rtp", "--n", "3", "--out", str(prompts)]) == 0
    side = json.loads(Path(f"{prompts}.source.json").read_text())
    from bench.utils.io import sha256_file

    assert side["sha256"] == sha256_file(prompts)
    prompts.write_text(prompts.read_text().replace(" ", "  ", 1))  # one prompt edited after it was prepared
    with caplog.at_level(logging.ERROR):
        assert (
            main(
                [
                    "generate",
                    "--base",
                    TINY_GPT2,
                    "--prompts",
                    str(prompts),
                    "--out",
                    str(tmp_path / "g.jsonl"),
                    "--num-samples",
                    "1",
                    "--max-new-tokens",
                    "2",
                    "--device",
                    "cpu",
                    "--task",
                    "toxicity",
                ]
            )
            == 2
        )
    assert f"{prompts}: content does not match the sha256 recorded in {prompts}.source.json" in caplog.text
    assert not list(tmp_path.glob("g.jsonl*"))


def test_scores_digest_verified_by_tables(gens, tmp_path, caplog):
    from bench.cli import main

    assert _score(gens["plain"], tmp_path / "s") == 0
    scores = tmp_path / "s.jsonl"
    assert json.loads(Path(f"{scores}.meta.json").read_text())["sha256"]
    rows = scores.read_text().splitlines()
    scores.write_text("\n".join(rows[1:] + rows[:1]) + "\n")  # rows reordered: same bytes, other order
    with caplog.at_level(logging.ERROR):
        assert (
            main(
                [
                    "tables",
                    "--summaries",
                    str(tmp_path / "s.csv"),
                    "--scores",
                    str(scores),
                    "--out-dir",
                    str(tmp_path / "t"),
                    "--n-boot",
                    "10",
                ]
            )
            == 2
        )
    assert f"{scores}: content does not match the sha256" in caplog.text
    assert not (tmp_path / "t").exists()


# ============================================================================ 3. stage contracts
@pytest.mark.parametrize(
    "metrics", ["toxicity,diversity", "diversity", "toxicity,fluency,diversity", "sentiment,fluency", "fluency"]
)
def test_each_stage_takes_what_the_previous_one_wrote(gens, tmp_path, metrics):
    """generate (plain / reward-guided) -> score (every metric subset changes the summary's columns) ->
    tables with and without --scores, and figures."""
    from bench.cli import main

    summaries, scores = [], []
    for name in ("plain", "rad"):
        assert _score(gens[name], tmp_path / name, metrics) == 0
        summaries.append(str(tmp_path / f"{name}.csv"))
        scores.append(str(tmp_path / f"{name}.jsonl"))
    assert main(["tables", "--summaries", *summaries, "--out-dir", str(tmp_path / "t1"), "--n-boot", "10"]) == 0
    assert (
        main(
            [
                "tables",
                "--summaries",
                *summaries,
                "--scores",
                *scores,
                "--out-dir",
                str(tmp_path / "t2"),
                "--n-boot",
                "10",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(tmp_path / "t2" / "toxicity.csv")))
    assert [r["method"] for r in rows] == ["plain", "rad"]
    assert "matched_fluency.md" in {p.name for p in (tmp_path / "t2").iterdir()}
    assert (
        main(
            [
                "figures",
                "--summaries",
                *summaries,
                "--scores",
                *scores,
                "--out-dir",
                str(tmp_path / "f"),
                "--n-boot",
                "10",
            ]
        )
        == 0
    )
    # the figure of the matched-fluency table tables wrote (a header-only one without fluency scores)
    assert (
        main(
            [
                "figures",
                "--summaries",
                *summaries,
                "--matched-fluency",
                str(tmp_path / "t2" / "matched_fluency.csv"),
                "--out-dir",
                str(tmp_path / "f2"),
            ]
        )
        == 0
    )
    assert (tmp_path / "f2" / "matched_fluency.png").stat().st_size > 0


def test_generations_without_task_are_refused_at_score_with_the_fix(gens, tmp_path, caplog):
    """`bench generate` without --task writes task null: `bench score` says so (and how to fix it) instead of
    writing a summary that `bench tables` cannot group."""
    meta = json.loads(Path(f"{gens['plain-notask']}.meta.json").read_text())
    assert meta["task"] is None
    with caplog.at_level(logging.ERROR):
        assert _score(gens["plain-notask"], tmp_path / "s") == 2
    assert "key 'task' = None" in caplog.text and "--task" in caplog.text
    g = _copy_gen(gens["plain-notask"], tmp_path)
    Path(f"{g}.meta.json").write_text(json.dumps(dict(meta, task="toxicity")))  # the fix the message names
    assert _score(g, tmp_path / "s") == 0


@pytest.mark.parametrize(
    "change, expect",
    [
        ({"method": None}, "key 'method' = None"),
        ({"task": "  "}, "key 'task' = '  '"),
        ({"beta": "high"}, "key 'beta' = 'high'"),
        ({"beta": -1}, "key 'beta' = -1"),
        ({"top_k": 0}, "key 'top_k' = 0"),
    ],
)
def test_generation_meta_without_usable_settings_is_refused(gens, tmp_path, caplog, change, expect):
    g = _copy_gen(gens["plain"], tmp_path)
    meta = json.loads(Path(f"{g}.meta.json").read_text())
    meta.update(change)
    Path(f"{g}.meta.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.ERROR):
        assert _score(g, tmp_path / "s") == 2
    assert f"{g}.meta.json: {expect}" in caplog.text


def test_generation_meta_missing_its_settings_is_refused(gens, tmp_path, caplog):
    g = _copy_gen(gens["plain"], tmp_path)
    meta = json.loads(Path(f"{g}.meta.json").read_text())
    Path(f"{g}.meta.json").write_text(json.dumps({"sha256": meta["sha256"]}))
    with caplog.at_level(logging.ERROR):
        assert _score(g, tmp_path / "s") == 2
    assert "key 'method' missing" in caplog.text


@pytest.mark.parametrize(
    "column, value, expect",
    [
        ("task", "", "column 'task' is blank"),
        ("task", "   ", "column 'task' is blank"),
        ("method", "", "column 'method' is blank"),
        ("beta", "n/a", "column 'beta'"),
        ("top_k", "", "column 'top_k'"),
    ],
)
def test_tables_refuse_a_summary_with_a_blank_key(gens, tmp_path, caplog, column, value, expect):
    from bench.cli import main

    assert _score(gens["plain"], tmp_path / "s") == 0
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    rows[0][column] = value
    with open(tmp_path / "s.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with caplog.at_level(logging.ERROR):
        assert main(["tables", "--summaries", str(tmp_path / "s.csv"), "--out-dir", str(tmp_path / "t")]) == 2
    assert f"{tmp_path / 's.csv'}: line 2: {expect}" in caplog.text


# ============================================================================ 4. empty / degenerate content
def _hand_gens(tmp_path: Path, continuations: list[list[str]]) -> Path:
    g = tmp_path / "hand.jsonl"
    g.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "prompt": f"Prompt {i}", "continuations": c}) + "\n"
            for i, c in enumerate(continuations)
        )
    )
    Path(f"{g}.meta.json").write_text(json.dumps({"method": "rad", "beta": 5.0, "top_k": 5, "task": "toxicity"}))
    return g


def test_all_empty_continuations_are_a_flagged_result(tmp_path, caplog):
    from bench.cli import main

    g = _hand_gens(tmp_path, [["", " "], ["", "\n"]])
    with caplog.at_level(logging.WARNING):
        assert _score(g, tmp_path / "s", "toxicity,diversity") == 0
    assert "4 of 4 continuations are empty or whitespace only" in caplog.text
    row = next(csv.DictReader(open(tmp_path / "s.csv")))
    assert row["n_empty"] == "4" and row["n_samples"] == "4"
    assert main(["tables", "--summaries", str(tmp_path / "s.csv"), "--out-dir", str(tmp_path / "t")]) == 0
    md = (tmp_path / "t" / "toxicity.md").read_text()
    assert "Degenerate output (empty or whitespace-only continuations): " in md and "4 of 4" in md
    # a run without empty text: n_empty 0 and no note
    g2 = _hand_gens(tmp_path, [[" fine", " ok"]])
    assert _score(g2, tmp_path / "s2", "toxicity,diversity") == 0
    assert next(csv.DictReader(open(tmp_path / "s2.csv")))["n_empty"] == "0"
    assert main(["tables", "--summaries", str(tmp_path / "s2.csv"), "--out-dir", str(tmp_path / "t2")]) == 0
    assert "Degenerate" not in (tmp_path / "t2" / "toxicity.md").read_text()


def test_a_prompt_without_samples_is_refused(tmp_path, caplog):
    g = _hand_gens(tmp_path, [[" a"], []])
    with caplog.at_level(logging.ERROR):
        assert _score(g, tmp_path / "s") == 2
    assert f"{g}: line 2: 'continuations' is empty" in caplog.text


@pytest.mark.parametrize("prompt", ["   ", "\n\t"])
def test_whitespace_only_prompt_is_refused_naming_the_line(tmp_path, caplog, prompt):
    from bench.cli import main

    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"id": "a", "prompt": "Hi"}) + "\n" + json.dumps({"id": "b", "prompt": prompt}) + "\n")
    with caplog.at_level(logging.ERROR):
        assert (
            main(
                [
                    "generate",
                    "--base",
                    TINY_GPT2,
                    "--prompts",
                    str(p),
                    "--out",
                    str(tmp_path / "g.jsonl"),
                    "--device",
                    "cpu",
                ]
            )
            == 2
        )
    assert f"{p}: line 2: 'prompt' is whitespace only" in caplog.text


def test_whitespace_only_training_text_is_refused(tmp_path):
    from bench.training.collate import read_labeled_jsonl

    p = tmp_path / "train.jsonl"
    p.write_text(
        json.dumps({"text": "ok", "labels": {"toxicity": 0.0}})
        + "\n"
        + json.dumps({"text": "  ", "labels": {"toxicity": 1.0}})
        + "\n"
    )
    with pytest.raises(DataError, match=rf"{p}: line 2: 'text' is whitespace only"):
        read_labeled_jsonl(p, ["toxicity"])


# ============================================================================ 5. resource faults
def _generate_with_file_limit(tmp_path: Path, limit: int) -> subprocess.CompletedProcess:
    prompts = tmp_path / "p.jsonl"
    prompts.parent.mkdir(parents=True)
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Number {i} is"}) + "\n" for i in range(6)))

    def cap():  # a disk that fills up: writes past `limit` bytes per file fail with EFBIG (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        bench_cmd(
            "generate",
            "--base",
            TINY_GPT2,
            "--prompts",
            prompts,
            "--out",
            tmp_path / "out" / "g.jsonl",
            "--num-samples",
            "2",
            "--max-new-tokens",
            "4",
            "--batch-size",
            "1",
            "--device",
            "cpu",
            "--task",
            "toxicity",
        ),
        cwd=REPO,
        env=bench_env(),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=cap,
    )


@pytest.mark.slow
def test_full_disk_during_generation_ends_cleanly(tmp_path):
    # the disk fills while the first batches are appended: one line naming the partial file; it keeps only
    # whole records (the torn batch is cut), which a rerun resumes
    res = _generate_with_file_limit(tmp_path / "a", 500)
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    partial = tmp_path / "a" / "out" / "g.jsonl.partial.jsonl"
    assert f"{partial}: cannot write (File too large)" in last and "Traceback" not in res.stderr
    lines = partial.read_text().splitlines()
    assert lines and all(json.loads(x)["continuations"] for x in lines)  # every line whole
    assert not (tmp_path / "a" / "out" / "g.jsonl").exists()
    # the disk is full before anything is written: nothing at all is left (no empty .partial)
    res = _generate_with_file_limit(tmp_path / "b", 100)
    assert res.returncode == 2 and "cannot write (File too large)" in res.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "b" / "out").exists() or not any((tmp_path / "b" / "out").iterdir())


def test_atomic_outputs_name_the_output_when_a_write_fails(tmp_path):
    from bench.utils.io import atomic_outputs

    a, b = tmp_path / "o" / "a.jsonl", tmp_path / "o" / "b.csv"
    with pytest.raises(DataError, match=rf"{a}, {b}: cannot write \(No space left on device\)"):
        with atomic_outputs(a, b) as (ta, tb):
            ta.write_text("x")
            raise OSError(errno.ENOSPC, "No space left on device")  # as a full disk does (no filename)
    assert not (tmp_path / "o").exists()


def test_reward_model_save_on_a_full_disk_leaves_nothing(tmp_path, monkeypatch):
    import safetensors.torch

    from bench.rewards.registry import load_reward_model, save_reward_model

    model = load_reward_model(make_reward_folder(tmp_path / "src"))

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(DataError, match=rf"{tmp_path / 'dst'}: cannot write the reward model \(No space left"):
        save_reward_model(model, tmp_path / "dst")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_unusable_score_cache_is_one_line_naming_the_path(gens, tmp_path, caplog):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.ERROR):
        assert _score(gens["plain"], tmp_path / "s", "toxicity", "--cache", str(blocker / "scores.sqlite")) == 2
    assert f"{blocker}: is a file, not a folder" in caplog.text
    assert not (tmp_path / "s.csv").exists()


def test_score_cache_full_disk_is_a_data_error(tmp_path):
    """SQLite's own failures (disk full, read-only file) name the cache file instead of a traceback."""
    from bench.metrics.cache import ScoreCache

    cache = ScoreCache(tmp_path / "c.sqlite")
    pages = cache.conn.execute("PRAGMA page_count").fetchone()[0]
    cache.conn.execute(f"PRAGMA max_page_count = {pages}")  # the database cannot grow: SQLITE_FULL
    with pytest.raises(DataError, match=rf"{tmp_path / 'c.sqlite'}: score cache failed \(database or disk is full"):
        cache.put_many("s", "v", {f"{i:064x}": 0.5 for i in range(5000)})
    cache.close()
    assert temp_leftovers(tmp_path) == []
