"""Kill -9 in the middle of a step, rerun the same command: the step resumes and its final outputs are
byte-identical (tensor-identical for models) to an uninterrupted run; a partial file is never taken for
complete; a resume whose inputs changed (prompt text, model, data) starts over for what changed. Plus: same
config and seed -> same bytes (determinism).

Every kill lands at a point the command signals (BENCH_TEST_KILL_AT, bench.utils.testhooks: right after its
n-th batch / checkpoint is on disk), never after a delay, so the outcome does not depend on machine speed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.cli import main as bench_main
from helpers_reliability import (
    TINY_GPT2,
    bench_cmd,
    make_reward_folder,
    require_command,
    run_bench,
    run_until_killed,
    temp_leftovers,
    write_prompts,
    write_train_split,
)


def _nonempty_lines(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except FileNotFoundError:
        return 0


# ----------------------------------------------------------------------------------------------- generate
def _generate_args(prompts: Path, out: Path, reward: Path | None, seed: int = 0) -> list[str]:
    args = [
        "generate",
        "--base",
        TINY_GPT2,
        "--prompts",
        str(prompts),
        "--out",
        str(out),
        "--num-samples",
        "2",
        "--max-new-tokens",
        "12",
        "--batch-size",
        "1",
        "--top-k",
        "8",
        "--seed",
        str(seed),
        "--device",
        "cpu",
        "--task",
        "detox",
    ]
    if reward is not None:
        args += ["--reward", str(reward), "--beta", "5"]
    return args


@pytest.fixture(scope="module")
def gen_inputs(tmp_path_factory):
    require_command("generate")
    d = tmp_path_factory.mktemp("gen")
    prompts = write_prompts(d / "prompts.jsonl", 24)
    reward = make_reward_folder(d / "rad")
    ref = d / "ref" / "gen.jsonl"
    assert bench_main(_generate_args(prompts, ref, reward)) == 0
    return prompts, reward, ref


def test_generate_same_seed_same_bytes_other_seed_differs(gen_inputs, tmp_path):
    prompts, reward, ref = gen_inputs
    again = tmp_path / "again.jsonl"
    assert bench_main(_generate_args(prompts, again, reward)) == 0
    assert again.read_bytes() == ref.read_bytes()
    other = tmp_path / "other.jsonl"
    assert bench_main(_generate_args(prompts, other, reward, seed=1)) == 0
    assert other.read_bytes() != ref.read_bytes()
    assert not temp_leftovers(tmp_path)


@pytest.mark.slow
def test_generate_kill9_then_resume_gives_identical_bytes(gen_inputs, tmp_path):
    """Killed after its 4th batch, then (resumed) after 5 more, then a clean rerun: same bytes, 9 resumed."""
    prompts, reward, ref = gen_inputs
    out = tmp_path / "gen.jsonl"
    partial = Path(f"{out}.partial.jsonl")
    cmd = bench_cmd(*_generate_args(prompts, out, reward))  # batch size 1: one prompt per batch
    run_until_killed(cmd, "generate-batch:4")
    assert not out.exists() and _nonempty_lines(partial) == 4
    run_until_killed(cmd, "generate-batch:5")
    assert not out.exists() and _nonempty_lines(partial) == 9
    res = run_bench(*_generate_args(prompts, out, reward))
    assert res.returncode == 0, res.stderr[-3000:]
    assert out.read_bytes() == ref.read_bytes()
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    assert meta["resumed_prompts"] == 9
    assert not temp_leftovers(tmp_path), temp_leftovers(tmp_path)


def test_generate_torn_partial_line_is_not_taken_as_done(gen_inputs, tmp_path):
    """A partial file whose last line was cut mid-write by a kill: that prompt is regenerated, not trusted."""
    prompts, reward, ref = gen_inputs
    out = tmp_path / "gen.jsonl"
    partial = Path(f"{out}.partial.jsonl")
    run_until_killed(bench_cmd(*_generate_args(prompts, out, reward)), "generate-batch:3")
    lines = ref.read_text(encoding="utf-8").splitlines(keepends=True)
    done = partial.read_text(encoding="utf-8").splitlines(keepends=True)[:3]
    torn = lines[3][: len(lines[3]) // 2]  # half of the 4th prompt's record, no newline
    partial.write_text("".join(done) + torn, encoding="utf-8")
    res = run_bench(*_generate_args(prompts, out, reward))
    assert res.returncode == 0, res.stderr[-3000:]
    assert out.read_bytes() == ref.read_bytes()
    assert json.loads(Path(f"{out}.meta.json").read_text())["resumed_prompts"] == 3
    assert not partial.exists()


def test_generate_resume_regenerates_prompts_whose_text_changed(gen_inputs, tmp_path):
    """Killed after 3 prompts; the prompt file is edited (same ids, same path): the edited prompt is generated
    again (a warning names it), the others are resumed; the result equals a fresh run on the edited file."""
    _, reward, _ = gen_inputs
    prompts = write_prompts(tmp_path / "prompts.jsonl", 6)
    out = tmp_path / "gen.jsonl"
    run_until_killed(bench_cmd(*_generate_args(prompts, out, reward)), "generate-batch:3")
    recs = [json.loads(line) for line in prompts.read_text().splitlines()]
    recs[1]["prompt"] = "A completely different prompt about cats"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = run_bench(*_generate_args(prompts, out, reward))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "prompt text" in res.stderr and "p1" in res.stderr, res.stderr[-2000:]
    assert json.loads(Path(f"{out}.meta.json").read_text())["resumed_prompts"] == 2
    fresh = tmp_path / "fresh.jsonl"
    assert bench_main(_generate_args(prompts, fresh, reward)) == 0
    assert out.read_bytes() == fresh.read_bytes()


def test_generate_resume_with_other_reward_weights_starts_over(gen_inputs, tmp_path):
    """Same reward folder path, other weights (retrained): nothing is resumed, and the warning says why."""
    prompts, _, _ = gen_inputs
    reward = make_reward_folder(tmp_path / "rad", seed=0)
    out = tmp_path / "gen.jsonl"
    run_until_killed(bench_cmd(*_generate_args(prompts, out, reward)), "generate-batch:3")
    make_reward_folder(reward, seed=7)
    res = run_bench(*_generate_args(prompts, out, reward))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "reward_digest" in res.stderr and "starting over" in res.stderr, res.stderr[-2000:]
    assert json.loads(Path(f"{out}.meta.json").read_text())["resumed_prompts"] == 0
    fresh = tmp_path / "fresh.jsonl"
    assert bench_main(_generate_args(prompts, fresh, reward)) == 0
    assert out.read_bytes() == fresh.read_bytes()


def test_generate_score_tables_twice_gives_identical_tables(gen_inputs, tmp_path, monkeypatch):
    """The whole chain run twice from the same config and seed: the tables (every format) have the same bytes.
    Timing columns (tokens/s, wall time) belong in the latency benchmark, not in a result table."""
    require_command("score")
    require_command("tables")
    prompts, reward, _ = gen_inputs
    tables = []
    for run in ("a", "b"):
        d = tmp_path / run
        d.mkdir()
        monkeypatch.chdir(d)  # relative paths, as in the pipeline's work folder: only the folder differs
        gen, s, m = Path("gen.jsonl"), Path("scores.jsonl"), Path("summary.csv")
        assert bench_main(_generate_args(prompts, gen, reward)) == 0
        assert (
            bench_main(
                [
                    "score",
                    "--generations",
                    str(gen),
                    "--metrics",
                    "toxicity,diversity",
                    "--toxicity-scorer",
                    "profanity-check",
                    "--out-scores",
                    str(s),
                    "--out-summary",
                    str(m),
                    "--n-boot",
                    "50",
                ]
            )
            == 0
        )
        assert bench_main(["tables", "--summaries", str(m), "--out-dir", "tables"]) == 0
        tables.append({p.name: p.read_bytes() for p in sorted((d / "tables").iterdir())})
    a, b = tables
    assert a and sorted(a) == sorted(b)
    differ = {}
    for name in a:
        if a[name] != b[name]:
            differ[name] = _differing_columns(a[name], b[name]) if name.endswith(".csv") else "bytes differ"
    assert not differ, f"same config and seed, different tables: {differ}"


def _differing_columns(x: bytes, y: bytes) -> list[str]:
    import csv
    import io

    rx = list(csv.DictReader(io.StringIO(x.decode())))
    ry = list(csv.DictReader(io.StringIO(y.decode())))
    return sorted({k for a, b in zip(rx, ry) for k in a if a.get(k) != b.get(k)}) or ["row count / order"]


# -------------------------------------------------------------------------------------------------- train
def _train_args(train: Path, heldout: Path, out: Path, parametrization: str = "rad") -> list[str]:
    return [
        "train",
        "--parametrization",
        parametrization,
        "--backbone",
        TINY_GPT2,
        "--num-layers",
        "1",
        "--train",
        str(train),
        "--heldout",
        str(heldout),
        "--attributes",
        "toxicity",
        "--out",
        str(out),
        "--steps",
        "60",
        "--batch-size",
        "4",
        "--max-length",
        "16",
        "--seed",
        "0",
        "--checkpoint-every",
        "5",
        "--eval-every",
        "30",
        "--device",
        "cpu",
    ]


@pytest.fixture(scope="module")
def train_inputs(tmp_path_factory):
    require_command("train")
    d = tmp_path_factory.mktemp("train")
    train = write_train_split(d / "train.jsonl", 64, seed=0)
    heldout = write_train_split(d / "heldout.jsonl", 16, seed=1)
    ref = d / "ref_model"
    assert bench_main(_train_args(train, heldout, ref)) == 0
    return train, heldout, ref


def _load_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _checkpoint_written(ckpt: Path) -> bool:
    return ckpt.is_dir() and any(ckpt.iterdir())


def test_train_same_seed_same_tensors(train_inputs, tmp_path):
    import torch

    train, heldout, ref = train_inputs
    again = tmp_path / "again"
    assert bench_main(_train_args(train, heldout, again)) == 0
    a, b = _load_tensors(ref), _load_tensors(again)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_train_kill9_then_resume_gives_identical_tensors(train_inputs, tmp_path):
    """Killed after its 2nd checkpoint (step 10), resumed and killed after 3 more (step 25), then finished."""
    import torch

    train, heldout, ref = train_inputs
    out = tmp_path / "model"
    cmd = bench_cmd(*_train_args(train, heldout, out))
    run_until_killed(cmd, "train-checkpoint:2")
    assert json.loads((Path(f"{out}.ckpt") / "latest.json").read_text())["step"] == 10
    run_until_killed(cmd, "train-checkpoint:3")
    assert json.loads((Path(f"{out}.ckpt") / "latest.json").read_text())["step"] == 25
    assert not out.exists()
    res = run_bench(*_train_args(train, heldout, out))
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((out / "train_summary.json").read_text())["resumed_from_step"] == 25
    a, b = _load_tensors(ref), _load_tensors(out)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"tensor {k} differs after kill/resume"
    assert not temp_leftovers(tmp_path), temp_leftovers(tmp_path)


def test_train_resume_with_other_data_starts_over(train_inputs, tmp_path):
    """The training file is replaced (same path) after a kill: the checkpoint is not resumed (warning), and
    the model equals a fresh run on the new data."""
    import torch

    _, heldout, _ = train_inputs
    train = write_train_split(tmp_path / "train.jsonl", 64, seed=0)
    out = tmp_path / "model"
    run_until_killed(bench_cmd(*_train_args(train, heldout, out)), "train-checkpoint:1")
    write_train_split(train, 64, seed=5)
    res = run_bench(*_train_args(train, heldout, out))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "training data" in res.stderr and "starting over" in res.stderr, res.stderr[-2000:]
    assert json.loads((out / "train_summary.json").read_text())["resumed_from_step"] == 0
    fresh = tmp_path / "fresh"
    assert bench_main(_train_args(train, heldout, fresh)) == 0
    a, b = _load_tensors(fresh), _load_tensors(out)
    assert all(torch.equal(a[k], b[k]) for k in a)


# -------------------------------------------------------------------------------------------------- score
def _score_args(gens: Path, out_scores: Path, out_summary: Path, cache: Path) -> list[str]:
    return [
        "score",
        "--generations",
        str(gens),
        "--metrics",
        "toxicity,fluency,diversity",
        "--toxicity-scorer",
        "profanity-check",
        "--fluency-model",
        TINY_GPT2,
        "--cache",
        str(cache),
        "--out-scores",
        str(out_scores),
        "--out-summary",
        str(out_summary),
        "--fluency-batch-size",
        "1",
        "--device",
        "cpu",
    ]


def _cached_scores(cache: Path) -> int:
    """Rows committed to the SQLite score cache so far (read-only peek; 0 while it does not exist yet)."""
    import sqlite3

    if not cache.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("SELECT COUNT(*) FROM scores").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


@pytest.fixture(scope="module")
def score_inputs(tmp_path_factory, gen_inputs):
    require_command("score")
    d = tmp_path_factory.mktemp("score")
    _prompts, _reward, gens = gen_inputs
    ref_scores, ref_summary = d / "ref_scores.jsonl", d / "ref_summary.csv"
    assert bench_main(_score_args(gens, ref_scores, ref_summary, d / "ref_cache.sqlite")) == 0
    return gens, ref_scores, ref_summary


def test_score_same_input_same_bytes(score_inputs, tmp_path):
    gens, ref_scores, ref_summary = score_inputs
    s, m = tmp_path / "s.jsonl", tmp_path / "s.csv"
    assert bench_main(_score_args(gens, s, m, tmp_path / "cache.sqlite")) == 0
    assert s.read_bytes() == ref_scores.read_bytes()
    assert m.read_bytes() == ref_summary.read_bytes()


@pytest.mark.slow
def test_score_kill9_then_resume_gives_identical_bytes(score_inputs, tmp_path):
    """Killed right after the toxicity scores are in the cache, then (rerun) right after the perplexities:
    the third run scores nothing new and writes the same bytes as an uninterrupted run."""
    gens, ref_scores, ref_summary = score_inputs
    s, m, cache = tmp_path / "s.jsonl", tmp_path / "s.csv", tmp_path / "cache.sqlite"
    cmd = bench_cmd(*_score_args(gens, s, m, cache))
    run_until_killed(cmd, "score-batch:1")
    kept = [_cached_scores(cache)]
    run_until_killed(cmd, "score-batch:1")
    kept.append(_cached_scores(cache))
    assert 0 < kept[0] < kept[1], f"no scores kept across kills: {kept}"
    assert not s.exists() and not m.exists()
    print(f"cached scores after each kill: {kept}", file=sys.stderr)
    res = run_bench(*_score_args(gens, s, m, cache))
    assert res.returncode == 0, res.stderr[-3000:]
    assert s.read_bytes() == ref_scores.read_bytes()
    assert m.read_bytes() == ref_summary.read_bytes()
    assert not temp_leftovers(tmp_path), temp_leftovers(tmp_path)
