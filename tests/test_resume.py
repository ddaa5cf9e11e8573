"""Kill -9 in the middle of a step, rerun the same command: the step resumes and its final outputs are
byte-identical (tensor-identical for models) to an uninterrupted run; a partial file is never taken for
complete. Plus: same config and seed -> same bytes (determinism)."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from bench.cli import main as bench_main
from helpers_reliability import (TINY_GPT2, bench_cmd, kill_after, make_reward_folder, require_command,
                                 run_bench, temp_leftovers, write_prompts, write_train_split)

# Fixed so a failure can be replayed; the delays after the first progress are drawn from it.
RNG_SEED = 1234


def _nonempty_lines(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except FileNotFoundError:
        return 0


# ----------------------------------------------------------------------------------------------- generate
def _generate_args(prompts: Path, out: Path, reward: Path | None, seed: int = 0) -> list[str]:
    args = ["generate", "--base", TINY_GPT2, "--prompts", str(prompts), "--out", str(out), "--num-samples", "2",
            "--max-new-tokens", "12", "--batch-size", "1", "--top-k", "8", "--seed", str(seed), "--device", "cpu",
            "--task", "detox"]
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
    """Three kill -9 at random points after the first finished batch, then a clean rerun."""
    prompts, reward, ref = gen_inputs
    out = tmp_path / "gen.jsonl"
    partial = Path(f"{out}.partial.jsonl")
    rng = random.Random(RNG_SEED)
    outcomes, seen = [], []
    for _ in range(3):
        start = _nonempty_lines(partial)
        delay = rng.uniform(0.0, 1.0)
        outcomes.append(kill_after(bench_cmd(*_generate_args(prompts, out, reward)),
                                   lambda: _nonempty_lines(partial) > start, delay))
        if outcomes[-1] == "finished":
            break
        # killed: the final file is absent, or complete if the kill came after its atomic rename
        assert not out.exists() or out.read_bytes() == ref.read_bytes(), "incomplete output after a kill"
        if out.exists():
            break
        seen.append(_nonempty_lines(partial))
    assert "killed" in outcomes, f"the process was never killed mid-run: {outcomes}"
    assert seen and seen == sorted(seen) and seen[-1] > 0, f"no progress kept across kills: {seen}"
    print(f"generate kills: {outcomes}, prompts kept after each kill: {seen}", file=sys.stderr)
    res = run_bench(*_generate_args(prompts, out, reward))
    assert res.returncode == 0, res.stderr[-3000:]
    assert out.read_bytes() == ref.read_bytes()
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    assert meta["resumed_prompts"] > 0
    assert not temp_leftovers(tmp_path), temp_leftovers(tmp_path)


def test_generate_torn_partial_line_is_not_taken_as_done(gen_inputs, tmp_path):
    """A partial file whose last line was cut mid-write by a kill: that prompt is regenerated, not trusted."""
    prompts, reward, ref = gen_inputs
    out = tmp_path / "gen.jsonl"
    partial = Path(f"{out}.partial.jsonl")
    outcome = kill_after(bench_cmd(*_generate_args(prompts, out, reward)), lambda: _nonempty_lines(partial) >= 3, 0)
    assert outcome == "killed"
    lines = ref.read_text(encoding="utf-8").splitlines(keepends=True)
    done = partial.read_text(encoding="utf-8").splitlines(keepends=True)[:3]
    torn = lines[3][: len(lines[3]) // 2]  # half of the 4th prompt's record, no newline
    partial.write_text("".join(done) + torn, encoding="utf-8")
    res = run_bench(*_generate_args(prompts, out, reward))
    assert res.returncode == 0, res.stderr[-3000:]
    assert out.read_bytes() == ref.read_bytes()
    assert json.loads(Path(f"{out}.meta.json").read_text())["resumed_prompts"] == 3
    assert not partial.exists()


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
        assert bench_main(["score", "--generations", str(gen), "--metrics", "toxicity,diversity", "--toxicity-scorer",
                           "profanity-check", "--out-scores", str(s), "--out-summary", str(m), "--n-boot", "50"]) == 0
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
    return ["train", "--parametrization", parametrization, "--backbone", TINY_GPT2, "--num-layers", "1",
            "--train", str(train), "--heldout", str(heldout), "--attributes", "toxicity", "--out", str(out),
            "--steps", "60", "--batch-size", "4", "--max-length", "16", "--seed", "0", "--checkpoint-every", "5",
            "--eval-every", "30", "--device", "cpu"]


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
    import torch

    train, heldout, ref = train_inputs
    out = tmp_path / "model"
    ckpt = Path(f"{out}.ckpt")
    rng = random.Random(RNG_SEED + 1)
    outcomes = []
    for _ in range(3):
        delay = rng.uniform(0.0, 1.5)
        outcomes.append(kill_after(bench_cmd(*_train_args(train, heldout, out)),
                                   lambda: _checkpoint_written(ckpt), delay))
        if outcomes[-1] == "finished":
            break
        if (out / "model.safetensors").exists():  # killed after the final (atomic) save: must be complete
            a, b = _load_tensors(ref), _load_tensors(out)
            assert all(torch.equal(a[k], b[k]) for k in a), "incomplete model after a kill"
    assert "killed" in outcomes, f"training was never killed mid-run: {outcomes}"
    print(f"train kills: {outcomes}", file=sys.stderr)
    res = run_bench(*_train_args(train, heldout, out))
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = _load_tensors(ref), _load_tensors(out)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"tensor {k} differs after kill/resume"
    assert not temp_leftovers(tmp_path), temp_leftovers(tmp_path)


# -------------------------------------------------------------------------------------------------- score
def _score_args(gens: Path, out_scores: Path, out_summary: Path, cache: Path) -> list[str]:
    return ["score", "--generations", str(gens), "--metrics", "toxicity,fluency,diversity",
            "--toxicity-scorer", "profanity-check", "--fluency-model", TINY_GPT2, "--cache", str(cache),
            "--out-scores", str(out_scores), "--out-summary", str(out_summary), "--fluency-batch-size", "1",
            "--device", "cpu"]


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
    """Kill while scoring (the score cache fills as it goes), rerun: same score and summary bytes."""
    gens, ref_scores, ref_summary = score_inputs
    s, m, cache = tmp_path / "s.jsonl", tmp_path / "s.csv", tmp_path / "cache.sqlite"
    rng = random.Random(RNG_SEED + 2)
    outcomes, kept = [], []
    for _ in range(3):
        start = _cached_scores(cache)
        outcomes.append(kill_after(bench_cmd(*_score_args(gens, s, m, cache)),
                                   lambda: _cached_scores(cache) > start, rng.uniform(0.0, 0.5)))
        if outcomes[-1] == "finished":
            break
        # killed late, the outputs may already be in place: then they must be complete (atomic writes)
        for got, want in ((s, ref_scores), (m, ref_summary)):
            assert not got.exists() or got.read_bytes() == want.read_bytes(), f"{got} is incomplete after a kill"
        kept.append(_cached_scores(cache))
    assert "killed" in outcomes, f"scoring was never killed mid-run: {outcomes}"
    assert kept and kept[-1] > 0, "no scores survived the kills"
    print(f"score kills: {outcomes}, cached scores after each kill: {kept}", file=sys.stderr)
    res = run_bench(*_score_args(gens, s, m, cache))
    assert res.returncode == 0, res.stderr[-3000:]
    assert s.read_bytes() == ref_scores.read_bytes()
    assert m.read_bytes() == ref_summary.read_bytes()
    assert not temp_leftovers(tmp_path), temp_leftovers(tmp_path)
