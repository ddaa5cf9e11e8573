"""Rank analysis: known-rank matrices are recovered exactly; ARM reward matrices respect hidden + 1."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from bench.analysis import rank as rk
from tests.conftest import TINY_GPT2


def _orthonormal(n: int, r: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, r, generator=g, dtype=torch.float64))
    return q


SIGMA = [10.0, 5.0, 2.0, 1.0, 0.5, 0.2, 0.05]  # sigma/sigma_1 = 1 ... 0.02, 0.005: every ratio a factor >= 2
# from the thresholds 1e-2 and 1e-3, so no count depends on the SVD's last bit


def rank_outputs(out: Path) -> list[str]:
    """`bench rank`'s output flags, every file under `out` (rank.csv / rank.md are the tables the tests read)."""
    names = {"--out-csv": "rank.csv", "--out-md": "rank.md", "--out-vs-n-csv": "vs.csv", "--out-vs-n-md": "vs.md"}
    names |= {"--fig-spectrum": "s.png", "--fig-growth": "g.png", "--out-spectrum": "spec.csv"}
    return [x for flag, name in names.items() for x in (flag, str(out / name))]


def test_known_rank_recovered_exactly():
    u, v = _orthonormal(50, 7, 0), _orthonormal(300, 7, 1)
    m = u @ torch.diag(torch.tensor(SIGMA, dtype=torch.float64)) @ v.T
    sp = rk.spectrum(m)
    assert torch.allclose(sp.sigma[:7], torch.tensor(SIGMA, dtype=torch.float64), atol=1e-10)
    assert sp.numerical_rank() == 7
    assert sp.effective_rank(1e-2) == 6  # 0.05 / 10 = 5e-3 < 1e-2
    assert sp.effective_rank(1e-3) == 7
    total = sum(s * s for s in SIGMA)
    assert sp.relative_error(1) == pytest.approx(math.sqrt((total - 100.0) / total), abs=1e-9)
    assert sp.relative_error(4) == pytest.approx(math.sqrt((0.25 + 0.04 + 0.0025) / total), abs=1e-9)
    assert sp.relative_error(7) == pytest.approx(0.0, abs=1e-7)
    p = torch.tensor(SIGMA) / sum(SIGMA)
    assert sp.entropy_rank() == pytest.approx(float(torch.exp(-(p * p.log()).sum())), rel=1e-6)
    row = rk.summarise(m, center_rows=False)
    assert (row["rank_1e-2"], row["rank_1e-3"], row["numerical_rank"], row["cap"]) == (6, 7, 7, 50)
    assert list(k for k in row if k.startswith("relerr_r")) == [f"relerr_r{r}" for r in (1, 2, 4, 8, 16, 32)]


def test_rank_vs_n_plateaus_for_low_rank_and_tracks_n_for_full_rank():
    """A rank-5 matrix plateaus at 5 as N grows; a random (full-rank) one tracks min(N, C) and says so via cap."""
    g = torch.Generator().manual_seed(0)
    low = torch.randn(256, 5, generator=g, dtype=torch.float64) @ torch.randn(5, 96, generator=g, dtype=torch.float64)
    full = torch.randn(256, 96, generator=g, dtype=torch.float64)
    sizes = rk.growth_sizes(256, start=16)
    assert sizes == [16, 32, 64, 128, 256]
    for r in rk.rank_vs_n(low, sizes):
        assert r["rank_1e-3"] == 5 and r["cap"] == min(r["n_prefixes"], 96 - r["centered"])
    raw = [r for r in rk.rank_vs_n(full, sizes) if not r["centered"]]
    assert [r["rank_1e-3"] for r in raw] == [16, 32, 64, 96, 96]
    assert [r["cap"] for r in raw] == [16, 32, 64, 96, 96]  # C = 96 caps N = 128, 256


def test_row_centering_removes_the_prefix_only_part():
    """c 1^T (a per-row constant, what ARM's baseline gives) + a rank-2 matrix with zero-mean rows."""
    n, c = 30, 40
    ones = torch.ones(c, 1, dtype=torch.float64) / math.sqrt(c)
    basis = _orthonormal(c, 3, 2)
    basis = basis - ones @ (ones.T @ basis)  # orthogonal to the all-ones direction
    v, _ = torch.linalg.qr(basis[:, :2])
    u = _orthonormal(n, 2, 3)
    shift = torch.linspace(1, 3, n, dtype=torch.float64)[:, None]
    low_rank = u @ torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64)) @ v.T
    m = shift * torch.ones(1, c, dtype=torch.float64) + low_rank
    assert rk.spectrum(m).numerical_rank() == 3
    centred = rk.spectrum(m, center_rows=True)
    assert centred.numerical_rank() == 2
    assert torch.allclose(centred.sigma[:2], torch.tensor([4.0, 1.0], dtype=torch.float64), atol=1e-10)


def test_growth_sizes_and_prefix_pool():
    assert rk.growth_sizes(100) == [64, 100]
    assert rk.growth_sizes(1024) == [64, 128, 256, 512, 1024]
    assert rk.growth_sizes(40) == [40]
    recs = [{"prompt": "A", "continuations": [" b c d", " b c d"]}, {"text": "Z y x"}, {"text": "Z"}]
    got = rk.prefixes_from_records(recs, n=20, cuts=3, seed=0)
    assert sorted(got) == sorted(["A", "A b", "A b c", "A b c d", "Z", "Z y", "Z y x"])  # duplicates dropped
    assert rk.prefixes_from_records(recs, n=2, seed=0) == got[:2]
    assert rk.prefixes_from_records(recs, n=20, seed=1) != got  # seeded order


def test_columns_are_frequent_tokens_and_a_seeded_sample():
    from collections import Counter

    counts = Counter({7: 10, 3: 10, 99: 5, 5: 1})
    assert rk.choose_columns("frequent", 3, 1000, counts).tolist() == [3, 7, 99]  # ties by id
    mixed = rk.choose_columns("mixed", 6, 1000, counts, seed=0)
    assert mixed.numel() == 6 and {3, 7, 99} <= set(mixed.tolist()) and len(set(mixed.tolist())) == 6
    assert torch.equal(mixed, rk.choose_columns("mixed", 6, 1000, counts, seed=0))
    sample = rk.choose_columns("sample", 50, 1000, seed=2)
    assert sample.numel() == 50 and not torch.equal(sample, rk.choose_columns("sample", 50, 1000, seed=3))
    assert rk.choose_columns("vocab", 5, 17).tolist() == list(range(17))
    assert rk.choose_columns("frequent", 5000, 10, counts).numel() == 10


def _random_heads(model, seed=0):
    """Untrained ARM heads are zero (R would be 0): give W, w (and the MLP mix) random values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith("backbone.") and p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


BOS = 50256  # GPT-2's <|endoftext|>: the reward model reads it first


def _random_prefixes(n, seed=0):
    """Token ids of n prefixes, without BOS (the reward model puts its own in front)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 9, (n,), generator=g).tolist()
    return [torch.randint(0, 50257, (length,), generator=g).tolist() for length in lengths]


@pytest.mark.parametrize("param,mlp_rank", [("arm-baseline", None), ("arm", None), ("arm-mlp", 8)])
def test_arm_reward_matrix_rank_at_most_hidden_plus_one(param, mlp_rank):
    from bench.rewards import RewardConfig, build_reward_model

    config = RewardConfig(parametrization=param, backbone=TINY_GPT2, mlp_rank=mlp_rank)
    model = _random_heads(build_reward_model(config))
    hidden = model.backbone.config.hidden_size
    bound = model.rank_bound()
    assert bound == {"arm-baseline": hidden + 1, "arm": hidden, "arm-mlp": 8 + 1}[param]
    enc = _random_prefixes(90)  # more rows than hidden + 1: a full-rank R would have rank 90
    R = rk.reward_matrix(model, enc, None, batch_size=32, pad_id=50256)
    assert R.shape == (90, model.vocab_size)
    sp = rk.spectrum(R)
    assert sp.numerical_rank() <= bound <= hidden + 1
    assert float(sp.normalised[bound]) < 1e-6  # everything past the bound is float32 round-off
    assert sp.numerical_rank() >= bound // 2  # and R is not trivially degenerate
    # the same rows for a subset of columns, through score_candidates in chunks
    cols = torch.tensor([5, 17, 1000, 50256])
    assert torch.allclose(rk.reward_matrix(model, enc[:8], cols, chunk_size=3, pad_id=50256), R[:8, cols], atol=1e-5)


@pytest.mark.parametrize("param", ["rad", "arm", "arm-baseline", "arm-mlp", "arm-distill"])
def test_reward_matrix_equals_forward_on_bos_prefix_token(param):
    """R[prefix, token] = forward(BOS + prefix + token) at its last position, row by row, unpadded, for a
    randomised model of every parametrization (the matrix is built batched, left-padded, in chunks)."""
    from bench.rewards import RewardConfig, build_reward_model

    model = _random_heads(build_reward_model(RewardConfig(parametrization=param, backbone=TINY_GPT2, mlp_rank=4)))
    enc = _random_prefixes(5, seed=1)
    cols = torch.tensor([3, 99, 400, 7000, 50000])
    R = rk.reward_matrix(model, enc, cols, batch_size=3, chunk_size=2, pad_id=50256)
    assert R.abs().min() > 0
    for i, ids in enumerate(enc):
        for j, tok in enumerate(cols.tolist()):
            x = torch.tensor([[BOS] + ids + [tok]])
            with torch.no_grad():
                ref = model(x, torch.ones_like(x))[0, -1, 0]
            assert float(R[i, j]) == pytest.approx(float(ref), abs=1e-4)
    if param == "rad":
        assert model.rank_bound() is None


def test_rank_command_end_to_end(tmp_path):
    from bench.cli import main
    from bench.rewards import RewardConfig, build_reward_model

    for param in ("arm-baseline", "rad"):
        model = _random_heads(build_reward_model(RewardConfig(parametrization=param, backbone=TINY_GPT2)))
        model.save_pretrained(tmp_path / param)
    gens = tmp_path / "gen.jsonl"
    gens.write_text(
        "".join(
            json.dumps(
                {"id": str(i), "prompt": f"Prompt {i} is", "continuations": [f" about {i} things and more", " nothing"]}
            )
            + "\n"
            for i in range(12)
        )
    )
    texts = tmp_path / "heldout.jsonl"
    texts.write_text(
        "".join(
            json.dumps({"text": f"Held-out text number {i} says something", "labels": {}}) + "\n" for i in range(20)
        )
    )
    out = tmp_path / "out"
    rc = main(
        [
            "rank",
            "--model",
            f"toxicity:arm-baseline={tmp_path / 'arm-baseline'}",
            "--model",
            f"toxicity:rad={tmp_path / 'rad'}",
            "--prefixes",
            f"toxicity={gens}",
            "--prefixes",
            f"toxicity={texts}",
            "--n-prefixes",
            "80",
            "--sizes",
            "16,32,64,80",
            "--n-columns",
            "48",
            "--chunk-size",
            "16",
            *rank_outputs(out),
        ]
    )
    assert rc == 0
    rows = list(csv.DictReader(open(out / "rank.csv")))
    assert len(rows) == 4 and {r["n_prefixes"] for r in rows} == {"80"} and {r["n_columns"] for r in rows} == {"48"}
    arm = [r for r in rows if r["method"] == "arm-baseline"]
    assert {r["centered"] for r in arm} == {"True", "False"}
    assert all(r["bound"] == "65" and int(r["numerical_rank"]) <= 48 for r in arm)
    assert {r["cap"] for r in arm} == {"48", "47"}
    assert [r["bound"] for r in rows if r["method"] == "rad"] == ["", ""]
    vs = list(csv.DictReader(open(out / "vs.csv")))
    assert {r["n_prefixes"] for r in vs} == {"16", "32", "64", "80"} and len(vs) == 2 * 4 * 2
    md = (out / "vs.md").read_text()
    assert "C caps the rank for N > 48" in md and "| toxicity | rad | no | - |" in md
    assert "| toxicity | arm-baseline |" in (out / "rank.md").read_text()
    assert (out / "s.png").stat().st_size > 1000 and (out / "g.png").stat().st_size > 1000
