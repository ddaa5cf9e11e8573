"""ARM and ARM-MLP: rewards equal the hand-computed formulas; cached decoding equals uncached scoring."""

from __future__ import annotations

import pytest
import torch

from bench.errors import ModelError
from bench.models.loading import load_causal_lm
from bench.rewards.arm import ARMRewardModel
from bench.rewards.base import RewardConfig
from bench.rewards.registry import build_reward_model, load_reward_model
from tests.conftest import TINY_GPT2

IDS = torch.tensor([[50256, 464, 3797, 318, 257, 922, 1110, 13], [50256, 50256, 50256, 40, 588, 340, 845, 881]])
MASK = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1]])  # row 1 left-padded


def with_bos(ids, mask):
    """BOS (GPT-2's <|endoftext|>) in front, mask 1: how the reward model reads a prefix at decoding time."""
    return (torch.cat([torch.full_like(ids[:, :1], 50256), ids], 1), torch.cat([torch.ones_like(mask[:, :1]), mask], 1))


def _model(parametrization: str, attributes=("toxicity", "insult"), **kw):
    cfg = RewardConfig(parametrization=parametrization, backbone=TINY_GPT2, attributes=list(attributes), **kw)
    model = build_reward_model(cfg)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # untrained heads are (near) zero; give them values to test the math
        for name, p in model.named_parameters():
            if p.requires_grad and not name.startswith("backbone"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model.eval()


def test_untrained_rewards_are_zero():
    for name in ("rad", "arm", "arm-baseline", "arm-mlp"):
        model = build_reward_model(RewardConfig(parametrization=name, backbone=TINY_GPT2, mlp_rank=4)).eval()
        with torch.no_grad():
            assert model(IDS, MASK).abs().max().item() == 0.0


@pytest.mark.parametrize("parametrization", ["arm", "arm-baseline", "arm-distill"])
def test_arm_reward_is_w_h_dot_e_plus_baseline(parametrization):
    model = _model(parametrization)
    assert model.config.baseline == (parametrization != "arm")
    with torch.no_grad():
        r = model(IDS, MASK)
        pos = (MASK.cumsum(-1) - 1).clamp(min=0)
        h = model.backbone(input_ids=IDS, attention_mask=MASK, position_ids=pos).last_hidden_state
    lm = load_causal_lm(TINY_GPT2)
    e = lm.get_output_embeddings().weight  # the frozen output embeddings, straight from the backbone
    assert torch.equal(model.token_embeddings, e)
    m, d = 2, e.shape[1]
    w_big = model.proj.weight.view(m, d, -1)  # W: rows grouped per attribute
    for b in range(2):
        for t in range(1, IDS.shape[1]):
            expected = torch.zeros(m)
            if MASK[b, t] and MASK[b, t - 1]:
                u = w_big @ h[b, t - 1]  # [m, d]: W h_{t-1}
                expected = u @ e[IDS[b, t]]
                if model.baseline is not None:
                    expected = expected + model.baseline.weight @ h[b, t - 1] + model.baseline.bias
            assert torch.allclose(r[b, t], expected, atol=1e-5), (b, t)
    assert r[:, 0].abs().max().item() == 0.0
    assert r[1, :3].abs().max().item() == 0.0  # padding, and the first real token (no prefix)


def test_arm_mlp_reward_by_hand_and_shapes():
    model = _model("arm-mlp", mlp_rank=5)
    v, d, m, r = model.vocab_size, 64, 2, 5
    assert model.mix_in.shape == (m, v, r) and model.mix_out.shape == (m, r, v)
    assert model.proj.weight.shape == (m * d, d)
    with torch.no_grad():
        out = model(IDS, MASK)
        h = model.hidden_states(IDS, MASK)
        vocab = model.score_vocab(IDS[:, 1:4], MASK[:, 1:4])  # BOS (IDS[0, 0]) + prefix ending at t - 1 = 3
    assert vocab.shape == (2, v, m)
    e = model.token_embeddings
    w_big = model.proj.weight.view(m, d, d)
    b, t = 0, 4
    for i in range(m):
        s = e @ (w_big[i] @ h[b, t - 1])  # [V]: one score per vocabulary entry
        mixed = (s @ model.mix_in[i]) @ model.mix_out[i]  # (s A) B
        full = mixed + model.baseline.weight[i] @ h[b, t - 1] + model.baseline.bias[i]
        assert torch.allclose(out[b, t, i], full[IDS[b, t]], atol=1e-4)
        assert torch.allclose(vocab[b, :, i], full, atol=1e-4)


def test_arm_mlp_score_vocab_by_hand():
    model = _model("arm-mlp", mlp_rank=3)
    with torch.no_grad():
        model.score_vocab(IDS[:, :5], MASK[:, :5])  # folds E^T A and keeps it for the next steps...
        model.mix_in.mul_(-2.0)  # ...until A changes in place (as an optimizer step does)
        vocab = model.score_vocab(IDS[:, :5], MASK[:, :5])
        h = model.hidden_states(*with_bos(IDS[:, :5], MASK[:, :5]))[:, -1]
    m, d = 2, 64
    w_big = model.proj.weight.view(m, d, d)
    for b in range(2):
        for i in range(m):
            s = model.token_embeddings @ (w_big[i] @ h[b])
            full = (s @ model.mix_in[i]) @ model.mix_out[i] + model.baseline(h[b])[i]
            assert torch.allclose(vocab[b, :, i], full, atol=1e-4)


@pytest.mark.parametrize("parametrization", ["arm-baseline", "arm-mlp"])
def test_cached_candidates_match_uncached_vocab(parametrization):
    model = _model(parametrization, mlp_rank=4)
    fed: list[int] = []
    model.backbone.register_forward_pre_hook(
        lambda mod, args, kw: fed.append(kw["input_ids"].shape[1]), with_kwargs=True
    )
    state = model.new_state()
    gen = torch.Generator().manual_seed(0)
    for length in range(4, 8):
        cands = torch.randint(0, model.vocab_size, (2, 6), generator=gen)
        cands[:, 0] = IDS[:, length]
        got = model.score_candidates(IDS[:, :length], MASK[:, :length], cands, state)
        vocab = model.score_vocab(IDS[:, :length], MASK[:, :length])  # no cache: the whole prefix again
        want = vocab.gather(1, cands[..., None].expand(-1, -1, 2))
        assert got.shape == (2, 6, 2)
        assert torch.allclose(got, want, atol=1e-5)
        with torch.no_grad():
            full = model(*with_bos(IDS[:, : length + 1], MASK[:, : length + 1]))
        assert torch.allclose(got[:, 0], full[:, -1], atol=1e-5)  # observed token = forward's reward after BOS
    assert state.resets == 0 and state.length == 1 + 7
    cached_calls = fed[0::3]  # each loop: the cached call, then uncached score_vocab and forward
    assert cached_calls == [1 + 4, 1, 1, 1]  # after the first call only the new token is read
    assert model.calls_per_token(20) == 1


def test_frozen_embeddings_and_roundtrip(tmp_path):
    model = _model("arm-baseline")
    saved = model.trainable_state_dict()
    assert "token_embeddings" not in saved and not any("wte" in k for k in saved)
    assert not model.token_embeddings.requires_grad
    assert "proj.weight" in saved and "baseline.weight" in saved
    model.save_pretrained(tmp_path / "rm")
    again = load_reward_model(tmp_path / "rm", expected_parametrization="arm-baseline")
    assert isinstance(again, ARMRewardModel)
    with torch.no_grad():
        assert torch.equal(again(IDS, MASK), model(IDS, MASK))
    assert ARMRewardModel.from_pretrained(tmp_path / "rm").config.parametrization == "arm-baseline"
    with pytest.raises(ModelError, match="expected 'arm-mlp'"):
        load_reward_model(tmp_path / "rm", expected_parametrization="arm-mlp")
