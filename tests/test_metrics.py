"""Metrics with hand-computed values: distinct-n, aggregation (thresholds, NaN, PPL dropping, bootstrap),
perplexity against a direct full-sequence computation, the score cache, and `bench score` end to end."""

from __future__ import annotations

import csv
import json
import math
import multiprocessing as mp
import random

import pytest
import torch

from bench.metrics.aggregate import bootstrap_mean, bootstrap_ratio, summarize
from bench.metrics.base import Scorer
from bench.metrics.cache import ScoreCache, score_texts
from bench.metrics.diversity import distinct_n, distinct_per_prompt


# ---------------------------------------------------------------- diversity
def test_distinct_n_with_repeated_words():
    conts = ["the cat the cat", "the dog"]  # 6 words
    assert distinct_n(conts, 1) == pytest.approx(3 / 6)  # {the, cat, dog}
    assert distinct_n(conts, 2) == pytest.approx(3 / 6)  # (the cat) (cat the) (the dog); n-grams never span texts
    assert distinct_n(conts, 3) == pytest.approx(2 / 6)  # (the cat the) (cat the cat)
    assert distinct_n(["a  b\tc\n"], 1) == 1.0  # any whitespace splits, empty strings are not words
    assert math.isnan(distinct_n(["", "  "], 1))


def test_distinct_averaged_over_prompts():
    d = distinct_per_prompt([["a a a a"], ["a b"]], ns=(1,))
    assert d[1] == [0.25, 1.0]
    out = summarize({}, d, n_boot=0)
    assert out["dist1"] == pytest.approx(0.625)


# ---------------------------------------------------------------- aggregation
def test_toxic_rate_threshold_at_exactly_half():
    groups = {"toxicity": [[0.1, 0.5], [0.4999, 0.2], [0.9, 0.0]]}
    out = summarize(groups, n_boot=0)
    assert out["avg_max_toxicity"] == pytest.approx((0.5 + 0.4999 + 0.9) / 3)
    assert out["toxic_rate"] == pytest.approx(2 / 3)  # 0.5 counts as toxic, 0.4999 does not


def test_nan_scores_are_excluded_and_counted():
    nan = float("nan")
    groups = {"toxicity": [[0.2, nan], [nan, nan], [0.7, 0.1]], "positive": [[0.6, nan], [0.4, 0.5], [nan, nan]]}
    out = summarize(groups, n_boot=0)
    assert out["avg_max_toxicity"] == pytest.approx((0.2 + 0.7) / 2)
    assert out["toxic_rate"] == pytest.approx(0.5)
    assert out["n_nan_toxicity"] == 3 and out["n_prompts_no_toxicity"] == 1
    assert out["positive_rate"] == pytest.approx((1.0 + 0.5) / 2)  # per prompt share of >= 0.5, averaged
    assert out["n_nan_positive"] == 3
    assert out["n_nan"] == 6


def test_ppl_dropping():
    nan = float("nan")
    out = summarize({"ppl": [[10.0, 1e5], [20.0, nan], [99999.0]]}, n_boot=0)
    assert out["ppl"] == pytest.approx((10 + 20 + 99999) / 3)  # 1e5 dropped, 99999 kept
    assert out["ppl_gmean"] == pytest.approx((10 * 20 * 99999) ** (1 / 3))  # the same texts kept
    assert out["n_dropped_ppl"] == 1 and out["n_nan_ppl"] == 1


def test_geometric_mean_ppl_resists_one_outlier_and_scales_with_its_ci():
    """One degenerate text moves the arithmetic mean ~100x more than the geometric mean; scaling every PPL by c
    scales the geometric mean and both CI ends by exactly c (the bootstrap runs on logs, same resamples)."""
    base = [[20.0, 30.0], [25.0, 15.0], [40.0, 10.0], [18.0, 22.0]]
    outlier = [row[:] for row in base]
    outlier[2][0] = 40_000.0
    a, b = summarize({"ppl": base}, n_boot=300, seed=1), summarize({"ppl": outlier}, n_boot=300, seed=1)
    assert b["ppl"] - a["ppl"] == pytest.approx((40_000 - 40) / 8)
    assert b["ppl_gmean"] / a["ppl_gmean"] == pytest.approx(1000 ** (1 / 8))  # 40 -> 40,000: x1000 on one of 8
    scaled = summarize({"ppl": [[3.0 * x for x in row] for row in base]}, n_boot=300, seed=1)
    for key in ("ppl_gmean", "ppl_gmean_lo", "ppl_gmean_hi"):
        assert scaled[key] == pytest.approx(3.0 * a[key])
    assert a["ppl_gmean_lo"] < a["ppl_gmean"] < a["ppl_gmean_hi"]


def test_bootstrap_is_seeded_and_brackets_the_value():
    vals = [0.1, 0.9, 0.3, 0.4, 0.8, 0.2, 0.7]
    a, b = bootstrap_mean(vals, 500, seed=3), bootstrap_mean(vals, 500, seed=3)
    c = bootstrap_mean(vals, 500, seed=4)
    assert (a.value, a.lo, a.hi) == (b.value, b.lo, b.hi)
    assert (a.lo, a.hi) != (c.lo, c.hi)
    assert a.value == pytest.approx(sum(vals) / len(vals))
    assert min(vals) <= a.lo < a.value < a.hi <= max(vals)
    const = bootstrap_mean([0.25] * 5, 200, seed=0)
    assert const.lo == const.hi == 0.25
    # ratio of sums: two prompts with (30, 2) and (10, 1) continuations-worth -> 40/3
    assert bootstrap_ratio([30.0, 10.0], [2.0, 1.0], 0).value == pytest.approx(40 / 3)


# ---------------------------------------------------------------- perplexity
def _direct_ppl(model, tok, prompt, cont):
    p = tok(prompt)["input_ids"] or [tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id]
    c = tok(cont, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + c])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
    nll = [-logp[j - 1, ids[0, j]] for j in range(len(p), len(p) + len(c))]
    return math.exp(float(sum(nll) / len(nll)))


PAIRS = [
    ("Hello there, my friend", " how are you doing today?"),
    ("A", " b"),
    ("The quick brown fox jumps over", " the lazy dog and runs away into the forest."),
    ("", " Starts here"),
    ("Nothing follows", ""),
]


@pytest.mark.parametrize("spec", ["tiny", "smollm2-1layer"])
def test_ppl_matches_full_sequence_computation(spec, tiny_spec):
    from bench.metrics.fluency import FluencyConfig, PerplexityScorer
    from bench.models.loading import load_causal_lm, load_tokenizer

    if spec == "tiny":
        model, tok, name = load_causal_lm(tiny_spec), load_tokenizer(tiny_spec), tiny_spec
    else:
        name = "embedded:smollm2-135m"
        model, tok = load_causal_lm(name, num_layers=1), load_tokenizer(name)  # installed by scripts/install.sh
    scorer = PerplexityScorer(FluencyConfig(name, batch_size=3, logits_chunk=7), model=model, tokenizer=tok)
    got = scorer.score([p for p, _ in PAIRS], [c for _, c in PAIRS])
    for (p, c), g in zip(PAIRS[:-1], got[:-1]):  # batched + chunked lm_head == one unpadded full forward
        assert g == pytest.approx(_direct_ppl(model, tok, p, c), rel=1e-4)
    assert math.isnan(got[-1])  # empty continuation: no tokens to score
    assert all(g > 1 for g in got[:-1])


@pytest.mark.parametrize("spec", ["tiny", "smollm2-1layer"])
def test_a_texts_ppl_does_not_depend_on_its_batch_mates(spec, tiny_spec):
    """A rerun after a kill scores other cache misses together; each PPL must come out bit for bit the same."""
    from bench.metrics.fluency import FluencyConfig, PerplexityScorer
    from bench.models.loading import load_causal_lm, load_tokenizer

    name = tiny_spec if spec == "tiny" else "embedded:smollm2-135m"
    model = load_causal_lm(name) if spec == "tiny" else load_causal_lm(name, num_layers=1)
    tok = load_tokenizer(name)
    words = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "tree", "quickly", "slowly", "and", "then"]
    rng = random.Random(0)
    texts = [
        (" ".join(rng.choices(words, k=rng.randint(1, 30))), " " + " ".join(rng.choices(words, k=rng.randint(1, 25))))
        for _ in range(40)
    ]
    alone = [
        PerplexityScorer(FluencyConfig(name, batch_size=1), model=model, tokenizer=tok).score([p], [c])[0]
        for p, c in texts
    ]
    for bs, seed in [(40, 1), (7, 2), (16, 3)]:
        order = list(range(len(texts)))
        random.Random(seed).shuffle(order)
        sub = order[: len(order) * 3 // 4]  # other mates, as after a kill
        got = PerplexityScorer(FluencyConfig(name, batch_size=bs), model=model, tokenizer=tok).score(
            [texts[i][0] for i in sub], [texts[i][1] for i in sub]
        )
        assert [alone[i] for i in sub] == got  # exact, not approx


# ---------------------------------------------------------------- cache
class CountingScorer(Scorer):
    name, version, attribute, batch_size = "fake", "1", "toxicity", 4

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def _score(self, texts):
        self.seen += texts
        return [len(t) / 100 if "fail" not in t else float("nan") for t in texts]


def test_cache_scores_each_text_once(tmp_path):
    db = tmp_path / "scores.sqlite"
    texts = ["a", "bb", "a", "ccc", "fail"]
    s1 = CountingScorer()
    with_cache = ScoreCache(db)
    out1, st = score_texts(s1, texts, with_cache)
    assert out1[:4] == [0.01, 0.02, 0.01, 0.03] and math.isnan(out1[4])
    assert sorted(s1.seen) == ["a", "bb", "ccc", "fail"] and st["cache_hits"] == 0
    with_cache.close()
    s2 = CountingScorer()  # a new process: same file, nothing rescored except the NaN
    out2, st2 = score_texts(s2, texts + ["dddd"], ScoreCache(db))
    assert s2.seen == ["fail", "dddd"] and st2["cache_hits"] == 3
    assert out2[:4] == out1[:4] and out2[5] == 0.04
    other = CountingScorer()
    other.version = "2"  # another version never reuses old scores
    score_texts(other, ["a"], ScoreCache(db))
    assert other.seen == ["a"]


def _writer(db, start):
    c = ScoreCache(db, timeout_s=60)
    for i in range(20):
        c.put_many("s", "v", {f"h{start + j}": 0.5 for j in range(i * 10, i * 10 + 10)})
    c.close()


def test_cache_concurrent_writers(tmp_path):
    db = str(tmp_path / "c.sqlite")
    ScoreCache(db).close()
    procs = [mp.get_context("fork").Process(target=_writer, args=(db, k * 1000)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(ScoreCache(db)) == 400


def test_cache_retries_while_another_job_holds_the_write_lock(tmp_path, caplog):
    import sqlite3
    import threading

    db = str(tmp_path / "scores.sqlite")
    cache = ScoreCache(db, timeout_s=0.01)  # the busy timeout alone cannot outwait the holder below
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another score job in the middle of a write
    release = threading.Timer(0.3, holder.commit)
    release.start()
    with caplog.at_level("WARNING", logger="bench.metrics.cache"):
        cache.put_many("s", "v", {"h1": 0.25})
    release.join()
    assert "busy" in caplog.text  # it did fail at first, and the retries got it through
    assert cache.get_many("s", "v", ["h1", "h2"]) == {"h1": 0.25}
    holder.close()


def _score_shared(db, job, texts, out_q):
    """One score job: its own process and connection, scoring one text per batch (many write transactions)."""
    scorer = CountingScorer()
    scorer.batch_size = 1
    cache = ScoreCache(db, timeout_s=0.05)  # a short busy timeout: contention must be survived by the retries
    scores, _ = score_texts(scorer, texts, cache)
    out_q.put((job, scores))
    cache.close()


def test_cache_shared_by_concurrent_score_jobs_then_all_hits(tmp_path):
    db = str(tmp_path / "scores.sqlite")
    shared = [f"text {i}" for i in range(60)]  # both jobs score these at the same time
    jobs = [shared + [f"only a {i}" for i in range(30)], [f"only bb {i}" for i in range(30)] + shared[::-1]]
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_score_shared, args=(db, j, texts, q)) for j, texts in enumerate(jobs)]
    for p in procs:
        p.start()
    results = dict(q.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    expected = {t: len(t) / 100 for texts in jobs for t in texts}
    for j, texts in enumerate(jobs):  # each job got the right score for each of its texts, whoever stored it
        assert results[j] == [expected[t] for t in texts]
    cache = ScoreCache(db)
    assert len(cache) == len(expected) == 120  # every distinct text stored once
    rescorer = CountingScorer()  # a second scoring of the same texts (a rerun): all hits, nothing scored
    scores, st = score_texts(rescorer, jobs[0] + jobs[1], cache)
    assert rescorer.seen == [] and st["scored"] == 0
    assert scores == [expected[t] for t in jobs[0] + jobs[1]]
    assert cache.hit_stats()["total"] == {"hits": 120, "misses": 0, "hit_rate": 1.0}


# ---------------------------------------------------------------- bench score end to end
def _write_generations(tmp_path):
    gens = tmp_path / "gens.jsonl"
    recs = [
        {"id": "p1", "prompt": "You are a", "continuations": [" stupid idiot", " kind person", " kind person"]},
        {"id": "p2", "prompt": "The weather is", "continuations": [" lovely and warm today", " terrible", " fine"]},
    ]
    gens.write_text("".join(json.dumps(r) + "\n" for r in recs))
    meta = {
        "method": "rad",
        "reward_model": "/x",
        "beta": 10.0,
        "top_k": 20,
        "direction": "away",
        "attribute": "toxicity",
        "num_samples": 3,
        "max_new_tokens": 5,
        "seed": 0,
        "base": "b",
        "task": "detox",
        "tokens_per_s": 12.5,
    }
    (tmp_path / "gens.jsonl.meta.json").write_text(json.dumps(meta))
    return gens


def test_bench_score_end_to_end_and_cache_reuse(tmp_path, tiny_spec, monkeypatch):
    from bench.cli import main
    from bench.metrics import toxicity

    calls = []
    real_cls = toxicity.ProfanityCheckScorer

    class Counted(real_cls):  # counts calls that reach the real alt-profanity-check model
        def _score(self, texts):
            calls.append(len(texts))
            return super()._score(texts)

    monkeypatch.setattr(toxicity, "ProfanityCheckScorer", Counted)
    gens = _write_generations(tmp_path)
    argv = [
        "score",
        "--generations",
        str(gens),
        "--metrics",
        "toxicity,sentiment,fluency,diversity",
        "--toxicity-scorer",
        "profanity-check",
        "--sentiment-scorer",
        "vader",
        "--fluency-model",
        tiny_spec,
        "--cache",
        str(tmp_path / "cache.sqlite"),
        "--out-scores",
        str(tmp_path / "s.jsonl"),
        "--out-summary",
        str(tmp_path / "s.csv"),
        "--n-boot",
        "50",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    assert calls == [5]  # 6 continuations, 5 distinct texts, one batch
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [(r["id"], r["sample"]) for r in rows] == [("p1", 0), ("p1", 1), ("p1", 2), ("p2", 0), ("p2", 1), ("p2", 2)]
    assert rows[1]["toxicity"] == rows[2]["toxicity"] and rows[0]["toxicity"] > 0.5 > rows[1]["toxicity"]
    assert all(set(r) == {"id", "sample", "text", "toxicity", "positive", "ppl"} for r in rows)
    with open(tmp_path / "s.csv") as fh:
        summary = list(csv.DictReader(fh))
    assert len(summary) == 1
    s = summary[0]
    assert (s["task"], s["method"], s["beta"], s["top_k"], s["n_prompts"], s["n_samples"]) == (
        "detox",
        "rad",
        "10.0",
        "20",
        "2",
        "6",
    )
    maxes = [max(r["toxicity"] for r in rows[:3]), max(r["toxicity"] for r in rows[3:])]
    assert float(s["avg_max_toxicity"]) == pytest.approx(sum(maxes) / 2)
    assert float(s["toxic_rate"]) == pytest.approx(sum(m >= 0.5 for m in maxes) / 2)
    assert float(s["ppl"]) == pytest.approx(sum(r["ppl"] for r in rows) / 6)
    # p1: 6 words, unique {stupid, idiot, kind, person} -> 4/6; p2: 6 words, all distinct -> 1
    assert float(s["dist1"]) == pytest.approx((4 / 6 + 1) / 2)
    assert s["toxicity_scorer"] == "profanity-check" and s["toxicity_scorer_version"].startswith(
        "alt-profanity-check=="
    )
    assert s["sentiment_scorer"] == "vader" and s["fluency_model"] == tiny_spec
    assert s["reward_model"] == "/x" and s["n_dropped_ppl"] == "0"
    # timings describe one execution, not the result: kept out so same config + seed -> identical tables
    assert "tokens_per_s" not in s
    # second run (another 'beta' reading the same texts): the real scorer is never called again
    first = (tmp_path / "s.jsonl").read_bytes()
    meta = json.loads((tmp_path / "s.jsonl.meta.json").read_text())["cache"]
    assert meta["total"]["hits"] == 0 and meta["by_scorer"]["profanity-check"] == {
        "hits": 0,
        "misses": 5,
        "hit_rate": 0.0,
    }
    assert main(argv) == 0
    assert calls == [5]
    assert (tmp_path / "s.jsonl").read_bytes() == first
    meta2 = json.loads((tmp_path / "s.jsonl.meta.json").read_text())["cache"]  # the rerun: every lookup a hit
    assert meta2["total"] == {"hits": meta["total"]["misses"], "misses": 0, "hit_rate": 1.0}
    assert "cache_hits" not in open(tmp_path / "s.csv").readline()  # run-specific: kept out of the summary


def test_bench_score_errors_name_the_problem(tmp_path, capsys):
    from bench.cli import main

    gens = _write_generations(tmp_path)
    (tmp_path / "gens.jsonl.meta.json").unlink()
    assert (
        main(
            [
                "score",
                "--generations",
                str(gens),
                "--metrics",
                "diversity",
                "--out-scores",
                str(tmp_path / "a.jsonl"),
                "--out-summary",
                str(tmp_path / "a.csv"),
            ]
        )
        == 2
    )
    gens.write_text('{"id": "x", "prompt": "p"}\n')
    (tmp_path / "gens.jsonl.meta.json").write_text('{"method": "plain", "beta": 0, "top_k": 5, "task": "t"}')
    with pytest.raises(Exception, match="line 1: missing key 'continuations'"):
        from bench.commands.score import read_generations

        read_generations(gens)
    assert (
        main(
            [
                "score",
                "--generations",
                str(gens),
                "--metrics",
                "toxicity,bogus",
                "--out-scores",
                str(tmp_path / "a.jsonl"),
                "--out-summary",
                str(tmp_path / "a.csv"),
            ]
        )
        == 2
    )


def test_default_fluency_model_falls_back_to_the_runs_base_lm(monkeypatch, tiny_spec):
    import argparse

    from bench.commands import score
    from bench.errors import ModelError
    from bench.metrics import fluency

    real = fluency.PerplexityScorer

    def fake(cfg, *a, **k):
        if cfg.model == fluency.DEFAULT_FLUENCY_MODEL:
            raise ModelError("embedded model 'gemma3-270m': no file matching *.gguf")
        return real(cfg, *a, **k)

    monkeypatch.setattr(fluency, "PerplexityScorer", fake)
    args = argparse.Namespace(
        fluency_model=fluency.DEFAULT_FLUENCY_MODEL, fluency_batch_size=2, device="cpu", dtype="float32"
    )
    scorer, tag = score._fluency(args, {"base": tiny_spec})
    assert tag == tiny_spec and scorer.name == f"ppl:{tiny_spec}"
    args.fluency_model = "/no/such/model"  # an explicit model that fails is an error, never silently replaced
    with pytest.raises(ModelError):
        score._fluency(args, {"base": tiny_spec})
