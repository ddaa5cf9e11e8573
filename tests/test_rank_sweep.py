"""Issue 30: the rank-constrained ARM (`arm-lowrank-r{r}`), the free token head (`free-head`) and the rank
sweep's table / figures (`bench rank-sweep`).

The generic interface checks (score_candidates == forward(BOS + p + v)[-1] under decoding, save / load, rank
bounds, step costs) run for both in tests/test_reward_interface.py and tests/test_registry.py; here: the rank
bound holds by construction and is reached, `bench rank` measures at most r + 1, the free head learns its own
token vectors, and the sweep table's numbers equal independent computations on hand-made runs.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.analysis import rank as rk
from bench.errors import DataError
from bench.rewards import registry
from bench.rewards.base import RewardConfig
from tests.conftest import TINY_GPT2
from tests.test_rank import rank_outputs

BOS = 50256  # GPT-2's <|endoftext|>: the reward model reads it first


def _random(name: str, seed: int = 0, scale: float = 0.1):
    """Random (not zero-init) reward weights: every prefix and token gets its own reward."""
    model = registry.build_reward_model(RewardConfig(parametrization=name, backbone=TINY_GPT2))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad and not n.startswith("backbone."):
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


def _vocab_matrix(model, n_prefixes: int = 40, seed: int = 0) -> torch.Tensor:
    """R[prefix, token] of the first attribute over the whole vocabulary, one `score_vocab` per prefix."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n_prefixes):
        ids = torch.randint(0, 50257, (1, int(torch.randint(1, 9, (1,), generator=g))), generator=g)
        rows.append(model.score_vocab(ids, torch.ones_like(ids))[0, :, 0])
    return torch.stack(rows).double()


# ------------------------------------------------------------------------------------------ the models
@pytest.mark.parametrize("r", [1, 4])
def test_lowrank_matrix_rank_is_r_plus_one_by_construction(r):
    """rank R <= r + 1 (token part + baseline), and random weights reach it; full-rank ARM is far above it."""
    model = _random(f"arm-lowrank-r{r}")
    assert model.rank_bound() == r + 1
    R = _vocab_matrix(model)
    assert rk.spectrum(R).numerical_rank() == r + 1
    centred = R - R.mean(dim=1, keepdim=True)  # removing each prefix's mean removes the baseline's rank-1 term
    assert rk.spectrum(centred).numerical_rank() <= r + 1
    full = _vocab_matrix(_random("arm-baseline"))
    assert rk.spectrum(full).numerical_rank() >= 30  # the same check on an unconstrained ARM would fail


def test_lowrank_projection_is_a_rank_r_product():
    model = _random("arm-lowrank-r2")
    w = torch.einsum("mer,mrd->med", model.proj.up, model.proj.down.weight.unflatten(0, (1, 2)))  # B A: [m, d_e, d]
    assert torch.linalg.matrix_rank(w[0]).item() == 2
    h = torch.randn(3, 64)
    torch.testing.assert_close(model.token_vectors(h)[:, 0], h @ w[0].T)
    cost = model.step_cost(10)
    assert cost["extra_params"] == 64 * 2 + 2 * 64 + 64 + 1 + 10 * 64  # A, B, w (+ bias), k embedding rows


def test_free_head_scores_with_its_own_trained_token_head(tmp_path):
    """Its token vectors start at the frozen output embeddings, are trained, saved and loaded; the trunk's
    embeddings are untouched; and its rewards equal a forward on BOS + prefix + candidate."""
    model = registry.build_reward_model(RewardConfig(parametrization="free-head", backbone=TINY_GPT2))
    emb = model.backbone.get_input_embeddings().weight
    assert model.token_embeddings is not emb and model.token_embeddings.requires_grad and not emb.requires_grad
    assert torch.equal(model.token_embeddings, emb)  # initialised at E (tied GPT-2 embeddings)
    before = emb.detach().clone()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    x = torch.tensor([[BOS, 464, 3797, 318, 257]])
    for _ in range(2):  # step 1 moves W off 0; step 2 reaches the token head through W h
        opt.zero_grad()
        model(x, torch.ones_like(x))[0, 1:, 0].sub(1.0).pow(2).sum().backward()
        opt.step()
    moved = (model.token_embeddings.detach() - before).abs().sum(dim=1)
    assert set(torch.nonzero(moved).flatten().tolist()) == {464, 3797, 318, 257}  # the scored tokens' rows only
    assert torch.equal(emb, before)
    model.eval().save_pretrained(tmp_path / "fh")
    loaded = registry.load_reward_model(tmp_path / "fh", expected_parametrization="free-head")
    assert torch.equal(loaded.token_embeddings, model.token_embeddings)
    p = [464, 3797]
    scores = loaded.score_vocab(torch.tensor([p]), torch.ones(1, 2, dtype=torch.long))[0, :, 0]
    for v in (257, 318, 50000):
        y = torch.tensor([[BOS, *p, v]])
        with torch.no_grad():
            assert float(scores[v]) == pytest.approx(float(loaded(y, torch.ones_like(y))[0, -1, 0]), rel=1e-5, abs=1e-6)


def test_bench_rank_measures_at_most_r_plus_one(tmp_path):
    from bench.cli import main

    for name in ("arm-lowrank-r2", "free-head"):
        _random(name).save_pretrained(tmp_path / name)
    texts = tmp_path / "heldout.jsonl"
    texts.write_text(
        "".join(
            json.dumps({"text": f"Held-out text number {i} says something else", "labels": {}}) + "\n"
            for i in range(30)
        )
    )
    out = tmp_path / "out"
    rc = main(
        [
            "rank",
            "--model",
            f"toxicity:arm-lowrank-r2={tmp_path / 'arm-lowrank-r2'}",
            "--model",
            f"toxicity:free-head={tmp_path / 'free-head'}",
            "--prefixes",
            f"toxicity={texts}",
            "--n-prefixes",
            "60",
            "--sizes",
            "60",
            "--n-columns",
            "48",
            *rank_outputs(out),
        ]
    )
    assert rc == 0
    rows = list(csv.DictReader(open(out / "rank.csv")))
    low = [r for r in rows if r["method"] == "arm-lowrank-r2"]
    assert [r["bound"] for r in low] == ["3", "3"]
    raw = next(r for r in low if r["centered"] == "False")
    assert int(raw["numerical_rank"]) == 3  # <= r + 1, and reached
    assert all(int(r["numerical_rank"]) <= 3 for r in low)
    free = [r for r in rows if r["method"] == "free-head"]
    assert {r["bound"] for r in free} == {"65"} and max(int(r["numerical_rank"]) for r in free) > 3


# ------------------------------------------------------------------------------------------ the sweep table
METHODS = {"rad": 0.20, "arm-lowrank-r1": 0.10, "arm-lowrank-r4": 0.16, "arm-baseline": 0.22, "free-head": 0.25}


def _write_run(folder: Path, method: str, beta: float, tox: np.ndarray, ppl: np.ndarray) -> tuple[str, str]:
    """A summary CSV + per-continuation JSONL as `bench score` writes them (2 samples per prompt)."""
    from bench.commands.score import write_summary
    from bench.utils.io import write_jsonl

    rows = [
        {"id": f"p{i // 2}", "sample": i % 2, "text": "x", "toxicity": float(t), "ppl": float(p)}
        for i, (t, p) in enumerate(zip(tox, ppl))
    ]
    stem = folder / f"toxicity_{method}_{beta:g}"
    write_jsonl(f"{stem}.jsonl", rows)
    write_summary(
        f"{stem}.csv",
        {
            "task": "toxicity",
            "method": method,
            "beta": beta,
            "top_k": 20,
            "n_prompts": len(tox) // 2,
            "avg_max_toxicity": 0.1,
            "ppl": 10.0,
        },
    )
    return f"{stem}.csv", f"{stem}.jsonl"


def _sweep_inputs(tmp_path: Path, noise: float = 0.0) -> tuple[list[tuple[str, str]], Path, Path]:
    """Plain at PPL 10 and each method at PPL 20 (beta 1) / 40 (beta 2): at 2x plain's PPL every method's value
    is its beta-1 run's average max toxicity, `0.5 - drop` (exactly, without noise)."""
    rng = np.random.default_rng(0)
    n = 24  # 12 prompts x 2 samples
    base = np.full(n, 0.5) + rng.normal(0, noise, n)
    files = [_write_run(tmp_path, "plain", 0, base, np.full(n, 10.0))]
    for m, drop in METHODS.items():
        files.append(_write_run(tmp_path, m, 1, base - drop + rng.normal(0, noise, n), np.full(n, 20.0)))
        files.append(_write_run(tmp_path, m, 2, base - drop - 0.05, np.full(n, 40.0)))
    rewards = tmp_path / "reward_models.csv"
    pd.DataFrame(
        {"task": "toxicity", "parametrization": list(METHODS), "heldout_auc": [0.94, 0.85, 0.90, 0.92, 0.93]}
    ).to_csv(rewards, index=False)
    ranks = tmp_path / "rank.csv"
    rank_rows = []
    for m, (eff, eff_c, bound) in {
        "rad": (14, 216, ""),
        "arm-lowrank-r1": (2, 1, 2),
        "arm-lowrank-r4": (5, 4, 5),
        "arm-baseline": (26, 121, 577),
        "free-head": (30, 150, 577),
    }.items():
        rank_rows += [
            {"task": "toxicity", "method": m, "centered": False, "rank_1e-2": eff, "bound": bound, "hidden_size": 576},
            {"task": "toxicity", "method": m, "centered": True, "rank_1e-2": eff_c, "bound": bound, "hidden_size": 576},
        ]
    pd.DataFrame(rank_rows).to_csv(ranks, index=False)
    return files, rewards, ranks


def _table(files, rewards=None, ranks=None, n_boot=100):
    from bench.reporting import rank_sweep as RS
    from bench.reporting import tables as T

    summaries, scores = [a for a, _ in files], [b for _, b in files]
    df = T.attach_scores(T.load_summaries(summaries), summaries, scores)
    return RS.sweep_table(
        df,
        [2.0],
        n_boot=n_boot,
        seed=0,
        rewards=RS.read_reward_table(rewards) if rewards else None,
        ranks=RS.read_rank_table(ranks) if ranks else None,
    )


def test_sweep_table_hand_computed(tmp_path):
    files, rewards, ranks = _sweep_inputs(tmp_path)
    t = _table(files, rewards, ranks).set_index("method")
    assert list(t.index) == ["rad", "arm-lowrank-r1", "arm-lowrank-r4", "arm-baseline", "free-head"]  # by rank
    for m, drop in METHODS.items():
        assert t.loc[m, "value"] == pytest.approx(0.5 - drop)
        assert t.loc[m, "ppl_level"] == pytest.approx(20.0)
    assert t.loc["arm-lowrank-r1", "vs_rad"] == pytest.approx(0.10)  # less toxicity removed than RAD: +0.10
    assert t.loc["arm-lowrank-r1", "vs_full"] == pytest.approx(0.12)
    assert t.loc["free-head", "vs_full"] == pytest.approx(-0.03)
    assert math.isnan(t.loc["rad", "vs_rad"]) and math.isnan(t.loc["arm-baseline", "vs_full"])
    assert t.loc["rad", "vs_full"] == pytest.approx(0.02)
    assert list(t["r"].fillna(-1)) == [-1, 1, 4, -1, -1]
    assert list(t["kind"]) == ["rad", "low rank", "low rank", "full", "free head"]
    assert t.loc["arm-lowrank-r4", "heldout_auc"] == 0.90
    assert (t.loc["arm-lowrank-r4", "eff_rank"], t.loc["arm-lowrank-r4", "eff_rank_centered"]) == (5, 4)
    assert t.loc["arm-lowrank-r4", "rank_bound"] == 5 and math.isnan(t.loc["rad", "rank_bound"])


def test_sweep_differences_equal_the_tables_matched_fluency(tmp_path):
    """With noise: vs_rad is `bench tables`' matched-fluency difference, and vs_full is the same joint bootstrap
    with full-rank ARM + baseline as the reference (value - value_full; its CI brackets it)."""
    from bench.reporting import tables as T

    files, _, _ = _sweep_inputs(tmp_path, noise=0.05)
    t = _table(files, n_boot=200)
    summaries, scores = [a for a, _ in files], [b for _, b in files]
    mf = T.matched_fluency_table(T.attach_scores(T.load_summaries(summaries), summaries, scores), [2.0], 200, 0)
    mf = mf.set_index("method")
    ts = t.set_index("method")
    for m in METHODS:
        for col in ("value", "value_lo", "value_hi", "vs_rad", "vs_rad_lo", "vs_rad_hi"):
            a, b = ts.loc[m, col], mf.loc[m, col]
            assert (math.isnan(a) and math.isnan(b)) or a == b, (m, col)
    full = ts.loc["arm-baseline", "value"]
    for m in ("rad", "arm-lowrank-r1", "free-head"):
        assert ts.loc[m, "vs_full"] == pytest.approx(ts.loc[m, "value"] - full)
        assert ts.loc[m, "vs_full_lo"] <= ts.loc[m, "vs_full"] <= ts.loc[m, "vs_full_hi"]
    assert ts.loc["arm-lowrank-r1", "vs_full_hi"] > ts.loc["arm-lowrank-r1", "vs_full_lo"]  # a real CI


def test_cli_writes_table_and_figure_and_refuses_missing_rows(tmp_path):
    from bench.cli import main

    files, rewards, ranks = _sweep_inputs(tmp_path)
    out, figs = tmp_path / "tables", tmp_path / "figs"
    args = [
        "rank-sweep",
        "--summaries",
        *[a for a, _ in files],
        "--scores",
        *[b for _, b in files],
        "--n-boot",
        "50",
        "--ppl-levels",
        "1.5,2",
        "--out-dir",
        str(out),
        "--fig-dir",
        str(figs),
    ]
    assert main([*args, "--reward-table", str(rewards), "--rank-table", str(ranks)]) == 0
    table = pd.read_csv(out / "rank_sweep.csv")
    assert len(table) == 2 * len(METHODS) and set(table["level"]) == {1.5, 2.0}
    md = (out / "rank_sweep.md").read_text()
    assert "| ARM + baseline, rank 4 | 4 | 5 | 0.900 | 5 / 4 |" in md and "Free head (GenARM-style)" in md
    assert (figs / "rank_sweep_toxicity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pd.read_csv(ranks).query("method != 'arm-lowrank-r1'").to_csv(ranks, index=False)
    (out / "rank_sweep.csv").unlink()
    assert main([*args, "--reward-table", str(rewards), "--rank-table", str(ranks)]) == 2
    assert not (out / "rank_sweep.csv").exists()  # nothing half-written
    with pytest.raises(DataError, match=r"rank.csv: no row for task 'toxicity', method 'arm-lowrank-r1'"):
        _table(files, rewards, ranks)
    no_full = [f for f in files if "arm-baseline" not in f[0]]
    with pytest.raises(DataError, match="no 'arm-baseline' runs"):
        _table(no_full)


# ------------------------------------------------------------------------------------------ the pipeline
@pytest.mark.slow  # two dry runs of the study's DAG
def test_rank_sweep_config_plans_only_new_work_beside_the_study(tmp_path):
    """`config/rank_sweep.yaml` over the study: the 16 trainings (8 parametrizations x 2 tasks), the sweep rule,
    and every job it shares with the study's work_dir has the study's command (so finished study jobs are reused)."""
    from tests.test_pipeline import job_counts, snakemake

    def plan(*configs: str) -> tuple[str, dict[str, str]]:
        res = snakemake("-n", "-p", "--configfile", *configs, workdir=tmp_path, timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        out = res.stdout + res.stderr
        jobs = {}
        for block in out.split("\n\n"):
            outputs = next((line for line in block.splitlines() if line.strip().startswith("output:")), None)
            if outputs:
                jobs[outputs.strip()] = "\n".join(
                    line for line in block.splitlines() if line.startswith("Shell command")
                )
        return out, jobs

    config = Path(__file__).resolve().parents[1] / "config"
    study_out, study = plan(str(config / "study.yaml"))
    sweep_out, sweep = plan(str(config / "study.yaml"), str(config / "rank_sweep.yaml"))
    counts = job_counts(sweep_out)
    assert counts["train"] == 16 and counts["rank_sweep"] == 1 and "train_distill" not in counts
    shared = [o for o in set(study) & set(sweep) if "runs/study/" in o]
    assert len(shared) > 40 and all(study[o] == sweep[o] for o in shared)
    assert any("rewards/toxicity/arm-lowrank-r1/" in o for o in sweep) and "--reward-table" in sweep_out
    assert "rank_sweep" not in job_counts(study_out)


@pytest.mark.slow
def test_tiny_rank_sweep_end_to_end(tmp_path):
    """config/test.yaml + a small sweep overlay: train, generate, score, reward table, rank and `bench rank-sweep`
    run for a rank-2 ARM, the free head, RAD and full-rank ARM + baseline; the measured rank of the rank-2 model
    is at most 3."""
    from tests.test_pipeline import snakemake

    overlay = tmp_path / "sweep.yaml"
    overlay.write_text(
        "work_dir: runs/sweep/work\nresults_dir: runs/sweep/results\nfigures_dir: runs/sweep/figures\n"
        "tasks:\n  toxicity:\n    betas_by_method: {arm-lowrank-r2: [5, 20], free-head: [5, 20]}\n"
        "  sentiment:\n    enabled: false\n"
        "training:\n  parametrizations: [rad, arm-baseline, arm-lowrank-r2, free-head]\n"
        "rank: {n_prefixes: 32, n_columns: 48, chunk_size: 48, sweep: true}\n"
    )
    config = Path(__file__).resolve().parents[1] / "config" / "test.yaml"
    res = snakemake(
        "--cores",
        "2",
        "runs/sweep/results/tables/rank_sweep.csv",
        "--configfile",
        str(config),
        str(overlay),
        workdir=tmp_path,
        timeout=1500,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    table = pd.read_csv(tmp_path / "runs/sweep/results/tables/rank_sweep.csv")
    assert set(table["method"]) == {"rad", "arm-lowrank-r2", "arm-baseline", "free-head"}
    low = table[table["method"] == "arm-lowrank-r2"].iloc[0]
    assert low["r"] == 2 and low["rank_bound"] == 3 and low["eff_rank"] <= 3 and low["eff_rank_centered"] <= 3
    assert table["heldout_auc"].notna().all()
    assert (tmp_path / "runs/sweep/figures/rank_sweep_toxicity.png").stat().st_size > 1000
