"""The one door into a reward model: what callers may ask, and the one input convention (BOS first).

The central check (issue 13, item 1): for a randomised reward model of every parametrization, the reward that
`TopKRewardLogitsProcessor` adds for candidate v after a left-padded, batched prompt p, over several decoding
steps, equals `forward(BOS + p + v)` at its last position, computed unpadded, one row at a time.
"""

from __future__ import annotations

import pytest
import torch

from bench.decoding.processors import TopKRewardLogitsProcessor
from bench.errors import ModelError
from bench.models.loading import load_tokenizer
from bench.rewards.arm import ARMRewardModel, ARMState
from bench.rewards.arm_mlp import ARMMLPRewardModel
from bench.rewards.base import PrefixCache, RewardConfig, RewardModel
from bench.rewards.rad import RADRewardModel, RADState
from bench.rewards.registry import build_reward_model, reward_class
from tests.conftest import TINY_GPT2

PARAMS = ["rad", "arm", "arm-baseline", "arm-mlp", "arm-distill", "arm-lowrank-r4", "free-head"]
GPT2_EOS = 50256  # GPT-2's tokenizer has no separate BOS: <|endoftext|> starts texts
# weight scales that put most rewards inside (0, 1), where the processor's clamp does not hide them
# (ARM without a baseline has no bias: about half its rewards are negative and clamp to 0)
SCALES = {
    "rad": 0.05,
    "arm": 0.15,
    "arm-baseline": 0.02,
    "arm-mlp": 0.05,
    "arm-distill": 0.02,
    "arm-lowrank-r4": 0.1,
    "free-head": 0.1,
}
PROMPTS = ["The quick brown fox jumps over", "Hi", "A somewhat longer prompt, with a comma, goes here"]


def randomised(parametrization: str, seed: int = 0, offset: float = 0.0, scale: float = 0.15) -> RewardModel:
    """Random (not zero-init) reward weights, so that every prefix and token gets its own reward."""
    model = build_reward_model(
        RewardConfig(parametrization=parametrization, backbone=TINY_GPT2, mlp_rank=6, attributes=["toxicity", "insult"])
    )
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and not name.startswith("backbone."):
                p.copy_(torch.randn(p.shape, generator=g) * scale)
                if name.endswith("bias"):
                    p.add_(offset)
    return model.eval()


def reference(model: RewardModel, tokens: list[int], steer: int) -> float:
    """forward(BOS + tokens) at its last position, one unpadded row."""
    x = torch.tensor([[GPT2_EOS] + tokens])
    with torch.no_grad():
        return float(model(x, torch.ones_like(x))[0, -1, steer])


@pytest.mark.parametrize("parametrization", PARAMS)
def test_processor_reward_equals_forward_on_bos_prompt_candidate(parametrization):
    model = randomised(parametrization, offset=0.5, scale=SCALES[parametrization])
    assert model.bos_token_id == GPT2_EOS
    tok = load_tokenizer(TINY_GPT2)
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    assert (enc.attention_mask == 0).any(), "the batch must be left-padded"
    top_k, beta = 6, 1.0
    proc = TopKRewardLogitsProcessor(model, top_k, beta, direction="toward", attribute="insult")
    proc.set_attention_mask(enc.attention_mask)
    steer = model.config.attributes.index("insult")
    ids = enc.input_ids
    rows = [enc.input_ids[b, enc.attention_mask[b].bool()].tolist() for b in range(len(PROMPTS))]
    g = torch.Generator().manual_seed(3)
    inside = total = 0
    for step in range(4):
        scores = torch.randn(ids.shape[0], model.vocab_size, generator=g)
        out = proc(ids, scores.clone())
        idx = scores.topk(top_k, dim=-1).indices
        for b in range(ids.shape[0]):
            for v in idx[b].tolist():
                want = reference(model, rows[b] + [v], steer)
                added = float(out[b, v] - scores[b, v])
                assert added == pytest.approx(beta * min(max(want, 0.0), 1.0), abs=2e-5), (step, b, v)
                inside += 0.0 < want < 1.0
                total += 1
        nxt = idx[:, step % top_k]  # "sample" one of the candidates, as generate would append it
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        for b in range(ids.shape[0]):
            rows[b].append(int(nxt[b]))
    assert inside >= total // 3, f"only {inside}/{total} rewards inside (0, 1): the clamp hides the comparison"
    assert proc.state.resets == 0  # one cache followed the whole run


@pytest.mark.parametrize("parametrization", ["rad", "arm-mlp"])
def test_empty_prefix_reads_bos_alone(parametrization):
    """The distillation teacher scores candidates after BOS alone: a [B, 0] prefix is BOS, then the candidate."""
    model = randomised(parametrization)
    empty = torch.zeros(2, 0, dtype=torch.long)
    got = model.score_candidates(empty, empty, torch.tensor([[11, 464], [3797, 7]]))
    for b, cands in enumerate([[11, 464], [3797, 7]]):
        for j, v in enumerate(cands):
            assert float(got[b, j, 0]) == pytest.approx(reference(model, [v], 0), abs=1e-5)


def test_bos_column_in_front_of_left_padding_is_bos_plus_prompt():
    """[BOS pad pad p1 p2 p3] with mask [1 0 0 1 1 1] is the same function as BOS + p: positions come from the mask.

    Checked on the trunk's hidden states (what every parametrization reads) and on RAD's per-position rewards.
    (ARM's `forward` scores x_t from h_{t-1}, so a gap of padding right before p1 is outside its contract;
    decoding only ever reads the last position, which the processor test above covers.)
    """
    p = [464, 3797, 318]
    padded = torch.tensor([[GPT2_EOS, GPT2_EOS, GPT2_EOS] + p])
    mask = torch.tensor([[1, 0, 0, 1, 1, 1]])
    plain = torch.tensor([[GPT2_EOS] + p])
    arm = randomised("arm-baseline")
    with torch.no_grad():
        h_pad = arm.hidden_states(padded, mask)[0, mask[0].bool()]
        h_plain = arm.hidden_states(plain, torch.ones_like(plain))[0]
    torch.testing.assert_close(h_pad, h_plain, atol=1e-5, rtol=0)
    rad = randomised("rad")
    with torch.no_grad():
        a = rad(padded, mask)[0, -3:]
        b = rad(plain, torch.ones_like(plain))[0, -3:]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert b.abs().min() > 0


@pytest.mark.parametrize("parametrization", PARAMS)
def test_from_pretrained_loads_its_own_folder(tmp_path, parametrization):
    model = randomised(parametrization, seed=1)
    folder = tmp_path / parametrization
    model.save_pretrained(folder)
    cls = reward_class(parametrization)
    loaded = cls.from_pretrained(folder)
    assert type(loaded) is cls and loaded.config.parametrization == parametrization
    assert RewardModel.from_pretrained(folder).config.parametrization == parametrization
    ids = torch.tensor([[GPT2_EOS, 464, 3797, 318, 257]])
    with torch.no_grad():
        assert torch.equal(loaded(ids, torch.ones_like(ids)), model(ids, torch.ones_like(ids)))
    for other in {RADRewardModel, ARMRewardModel, ARMMLPRewardModel} - {cls}:  # only names registered for a class
        with pytest.raises(ModelError, match=f"checkpoint is a '{parametrization}' reward model, expected"):
            other.from_pretrained(folder)


@pytest.mark.parametrize("parametrization", PARAMS)
def test_interface_properties(parametrization):
    model = randomised(parametrization)
    assert model.device == torch.device("cpu") and model.dtype == torch.float32
    assert model.hidden_size == 64
    state = model.new_state()
    assert isinstance(state, PrefixCache)
    assert isinstance(state, RADState if parametrization == "rad" else ARMState)
    bound = {
        "rad": None,
        "arm": 64,
        "arm-baseline": 65,
        "arm-mlp": 6 + 1,
        "arm-distill": 65,
        "arm-lowrank-r4": 4 + 1,
        "free-head": 65,
    }[parametrization]
    assert model.rank_bound() == bound
    cost = model.step_cost(10)
    assert set(cost) == {"trunk_params", "extra_params", "positions"}
    assert cost["positions"] == (11 if parametrization == "rad" else 1)
    trunk = {id(p): p.numel() for p in model.backbone.parameters()}
    wte = model.backbone.get_input_embeddings().weight
    assert cost["trunk_params"] == sum(trunk.values()) - wte.numel()
    if parametrization == "rad":
        assert cost["extra_params"] == 64 * 2 + 2
    elif parametrization == "arm":
        assert cost["extra_params"] == 64 * 2 * 64 + 10 * 2 * 64  # W, then k candidates' embedding rows
    elif parametrization == "arm-mlp":
        assert cost["extra_params"] == 64 * 2 * 64 + 64 * 2 + 2 + 2 * 64 * 6 + 10 * 2 * 6


def test_arm_state_reset_clears_the_hidden_state():
    model = randomised("arm-baseline")
    state = model.new_state()
    ids = torch.tensor([[464, 3797], [40, 588]])
    model.score_candidates(ids, torch.ones_like(ids), torch.tensor([[1, 2], [3, 4]]), state)
    assert state.last_hidden is not None and state.length == 3
    state.reset()
    assert state.last_hidden is None and state.length == 0 and state.past_key_values is None


@pytest.mark.parametrize("parametrization", ["rad", "arm-mlp"])
def test_counting_what_the_model_computed(parametrization):
    model = randomised(parametrization)
    ids = torch.tensor([[464, 3797, 318], [40, 588, 340]])
    mask = torch.ones_like(ids)
    k = 5
    cand = torch.arange(k).expand(2, -1)
    state = model.new_state()
    with model.counting() as counter:
        model.score_candidates(ids, mask, cand, state)  # first step: BOS + 3 prompt tokens
        assert counter.trunk_forwards == 1
        assert counter.trunk_positions == (4 + k if parametrization == "rad" else 4)
        counter.reset()
        ids = torch.cat([ids, cand[:, :1]], 1)
        model.score_candidates(ids, torch.ones_like(ids), cand, state)  # a later step: one new token
        assert counter.trunk_forwards == 1
        assert counter.trunk_positions == model.step_cost(k)["positions"]
        assert counter.head_rows == (k if parametrization == "rad" else 1)
    model.score_candidates(ids, torch.ones_like(ids), cand)
    assert counter.trunk_forwards == 1  # hooks are gone after the block


def test_collator_bos_is_the_reward_models_bos():
    from bench.training.collate import LabeledTexts

    model = randomised("arm")
    ds = LabeledTexts([("hello there", [1.0])], load_tokenizer(TINY_GPT2), max_length=8)
    assert ds[0].input_ids[0] == model.bos_token_id == GPT2_EOS
