"""The parametrization registry: every name's facts come from one entry, every class loads its own folders,
constructors leave the caller's config alone, old folders still load, and a parametrization added by one
entry plus one module runs through the pipeline's steps (the worked example of docs/architecture.md)."""

from __future__ import annotations

import csv
import json
import textwrap

import pytest
import torch

from bench.errors import ModelError
from bench.rewards import registry
from bench.rewards.base import CONFIG_NAME, RewardConfig
from bench.rewards.registry import Parametrization
from conftest import TINY_GPT2


def _config(name: str, **kw) -> RewardConfig:
    return RewardConfig(parametrization=name, backbone=TINY_GPT2, num_layers=1, **kw)


# ------------------------------------------------------------------------------------ one declaration
def test_callers_derive_names_from_the_registry():
    from bench.analysis.latency import all_methods
    from bench.cli import build_parser
    from bench.config import load_schema
    from bench.reporting.tables import method_label, method_order

    names = registry.names()
    lowrank = [f"arm-lowrank-r{r}" for r in registry.LOWRANK_RANKS]
    assert names == ["rad", "arm", "arm-baseline", "arm-mlp", "arm-distill", *lowrank, "free-head"]
    assert [registry.get(n).rank for n in lowrank] == list(registry.LOWRANK_RANKS)
    train = build_parser(["train"])._subparsers._group_actions[0].choices["train"]
    choices = next(a.choices for a in train._actions if a.dest == "parametrization")
    assert list(choices) == names
    schema = load_schema()
    assert schema["$defs"]["parametrization"]["enum"] == names
    assert schema["$defs"]["latency_method"]["enum"] == all_methods() == ["plain", "rad", "rad-loop", *names[1:]]
    assert method_order() == ["plain", *names]
    assert [method_label(m) for m in method_order()] == [
        "Plain (top-k)",
        "RAD",
        "ARM",
        "ARM + baseline",
        "ARM-MLP",
        "ARM (distilled)",
        *[f"ARM + baseline, rank {r}" for r in registry.LOWRANK_RANKS],
        "Free head (GenARM-style)",
    ]
    assert registry.label_trained() == ["rad", "arm", "arm-baseline", "arm-mlp", *lowrank, "free-head"]
    assert registry.distilled() == ["arm-distill"] and registry.get("arm-distill").teacher == "rad"


def test_bad_entries_are_refused():
    with pytest.raises(ModelError, match="already registered"):
        registry.register(Parametrization("arm", "bench.rewards.arm:ARMRewardModel", "again"))
    with pytest.raises(ModelError, match="teacher is named exactly when"):
        Parametrization("x", "m:C", "X", training=registry.DISTILLATION)
    with pytest.raises(ModelError, match="training must be one of"):
        Parametrization("x", "m:C", "X", training="rl")
    with pytest.raises(ModelError, match="rank must be an integer >= 1, got 0"):
        Parametrization("x", "m:C", "X", rank=0)
    with pytest.raises(ModelError, match="teacher 'nope' is not registered"):
        registry.register(Parametrization("x", "m:C", "X", training=registry.DISTILLATION, teacher="nope"))
    assert "x" not in registry.PARAMETRIZATIONS
    with pytest.raises(ModelError, match=r"unknown reward parametrization 'armx'; expected one of \['rad'"):
        registry.get("armx")


@pytest.mark.parametrize(
    "name", ["rad", "arm", "arm-baseline", "arm-mlp", "arm-distill", "arm-lowrank-r2", "free-head"]
)
def test_every_class_loads_its_own_folder_and_refuses_others(tmp_path, name):
    spec = registry.get(name)
    cls = spec.model_class()
    model = registry.build_reward_model(_config(name, mlp_rank=3 if spec.mlp_rank else None))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.uniform_(-0.1, 0.1)
    model.save_pretrained(tmp_path / name)
    loaded = cls.from_pretrained(tmp_path / name)
    assert type(loaded) is cls and loaded.config.parametrization == name
    assert loaded.config.baseline == spec.has_baseline
    ids = torch.tensor([[464, 3290, 318, 257]])
    assert torch.equal(loaded(ids), model.eval()(ids))
    others = [n for n in registry.names() if registry.get(n).model_class() is not cls]
    other = registry.build_reward_model(_config(others[0]))
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ModelError, match=f"checkpoint is a '{others[0]}' reward model, expected"):
        cls.from_pretrained(tmp_path / "other")


def test_constructors_copy_the_callers_config():
    cfg = _config("arm-mlp")
    model = registry.build_reward_model(cfg)
    assert cfg.mlp_rank is None and model.config.mlp_rank == 64  # the default (hidden size) lands in the copy
    direct = registry.get("arm-mlp").model_class()(cfg)  # called directly, too
    assert cfg.mlp_rank is None and direct.config is not cfg
    assert cfg.baseline is True and _config("arm").baseline is False  # the name says it


def test_old_folder_with_a_baseline_key_still_loads(tmp_path):
    model = registry.build_reward_model(_config("arm-baseline"))
    model.save_pretrained(tmp_path / "rm")
    data = json.loads((tmp_path / "rm" / CONFIG_NAME).read_text())
    assert "baseline" not in data
    data["baseline"] = True  # as saved before the registry
    (tmp_path / "rm" / CONFIG_NAME).write_text(json.dumps(data))
    assert registry.load_reward_model(tmp_path / "rm").baseline is not None
    data["baseline"] = False  # a contradiction is an error, not a silent guess
    (tmp_path / "rm" / CONFIG_NAME).write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"'baseline': False contradicts parametrization 'arm-baseline'"):
        registry.load_reward_model(tmp_path / "rm")


# ------------------------------------------------------------------------------------ the worked example
# Step 1 of "How to add a parametrization" (docs/architecture.md): one module with the RewardModel subclass.
TOY_MODULE = '''
"""toy-vocab: r(x, v) = (U h(x))_v, one free score per vocabulary entry from the trunk's last state."""
import torch
from torch import nn

from bench.models.loading import load_causal_lm
from bench.rewards.base import RewardModel, position_ids_from_mask


class ToyVocabRewardModel(RewardModel):
    def __init__(self, config):
        super().__init__(config)
        c = self.config
        lm = load_causal_lm(c.backbone, dtype=c.dtype, device="cpu", num_layers=c.num_layers)
        self.backbone = lm.base_model
        self.backbone.get_input_embeddings().weight.requires_grad_(False)
        self.n_vocab = int(lm.get_input_embeddings().num_embeddings)
        self.head = nn.Linear(self.backbone.config.hidden_size, self.n_vocab * c.num_outputs)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def vocab_size(self):
        return self.n_vocab

    def calls_per_token(self, k):
        return 1

    def _hidden(self, ids, mask):
        return self.backbone(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask),
                             use_cache=False).last_hidden_state

    def _vocab(self, h):  # [..., d] -> [..., V, m]
        return self.head(h).unflatten(-1, (self.n_vocab, self.config.num_outputs))

    def forward(self, input_ids, attention_mask=None):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        v = self._vocab(self._hidden(input_ids, attention_mask)[:, :-1])  # [B, L-1, V, m]
        idx = input_ids[:, 1:, None, None].expand(-1, -1, 1, v.shape[-1])
        r = v.gather(-2, idx).squeeze(-2)
        valid = (attention_mask[:, 1:] * attention_mask[:, :-1]).unsqueeze(-1).to(r.dtype)
        return torch.cat([r.new_zeros(r.shape[0], 1, r.shape[-1]), r * valid], dim=1)

    @torch.no_grad()
    def score_vocab(self, input_ids, attention_mask, state=None, chunk_size=1024):
        ids, mask = self.with_bos(input_ids, attention_mask)  # read BOS + text, as the training collator does
        return self._vocab(self._hidden(ids, mask)[:, -1])

    @torch.no_grad()
    def score_candidates(self, input_ids, attention_mask, candidates, state=None):
        v = self.score_vocab(input_ids, attention_mask)  # [B, V, m]
        return v.gather(1, candidates.long()[..., None].expand(-1, -1, v.shape[-1]))

    def _head_module(self):  # what counting() hooks as "one reward evaluation"
        return self.head

    def step_cost(self, k):  # for the latency harness' FLOPs limit
        return {"trunk_params": self._trunk_param_count(), "extra_params": self.head.weight.numel(), "positions": 1}
'''


@pytest.fixture
def toy_parametrization(tmp_path, monkeypatch):
    (tmp_path / "toy_vocab.py").write_text(textwrap.dedent(TOY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    # Step 2: one registry entry (in bench/rewards/registry.py for a real one; here, registered by the test).
    spec = registry.register(
        Parametrization(name="toy-vocab", cls="toy_vocab:ToyVocabRewardModel", display_name="Toy (full vocab head)")
    )
    yield spec
    registry.unregister("toy-vocab")


def test_toy_parametrization_through_train_generate_score_tables_latency_rank(tmp_path, toy_parametrization):
    from bench.cli import main
    from bench.config import validate_config
    from bench.reporting.tables import method_label

    work = tmp_path / "work"
    work.mkdir()
    # Step 3: it is a valid name everywhere the registry's names are used.
    cfg = validate_config(
        {
            "name": "t",
            "models": {"base": TINY_GPT2, "reward_backbone": TINY_GPT2},
            "tasks": {},
            "training": {"parametrizations": ["rad", "toy-vocab"]},
            "latency": {"methods": ["plain", "toy-vocab"]},
            "rank": {"methods": ["toy-vocab"]},
        }
    )
    assert cfg["training"]["parametrizations"] == ["rad", "toy-vocab"]
    assert method_label("toy-vocab") == "Toy (full vocab head)"

    # train (bench train, labels mode): learns that " bad" after a prefix is toxic
    train = work / "train.jsonl"
    rows = [
        {"text": f"sample {i} is {'bad bad' if i % 2 else 'good good'}", "labels": {"toxicity": float(i % 2)}}
        for i in range(32)
    ]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rm = work / "rewards" / "toy-vocab"
    assert (
        main(
            [
                "train",
                "--parametrization",
                "toy-vocab",
                "--backbone",
                TINY_GPT2,
                "--num-layers",
                "1",
                "--train",
                str(train),
                "--steps",
                "30",
                "--batch-size",
                "8",
                "--lr",
                "0.05",
                "--max-length",
                "16",
                "--eval-every",
                "0",
                "--out",
                str(rm),
            ]
        )
        == 0
    )
    model = registry.load_reward_model(rm)
    assert type(model).__name__ == "ToyVocabRewardModel" and model.config.parametrization == "toy-vocab"
    from bench.models.loading import load_tokenizer

    tok = load_tokenizer(TINY_GPT2)
    prefix = torch.tensor([tok.encode("sample 3 is")])  # the model puts its own BOS in front
    bad, good = tok.encode(" bad")[0], tok.encode(" good")[0]
    r = model.score_candidates(prefix, torch.ones_like(prefix), torch.tensor([[bad, good]]))[0, :, 0]
    assert float(r[0]) > float(r[1])  # it learnt something: the toxic continuation scores higher

    # generate (bench generate, reward-guided), score and tables
    prompts = work / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": str(i), "prompt": f"sample {i} is"}) + "\n" for i in range(3)))
    gen = work / "gen" / "toy-vocab_b5_k4.jsonl"
    assert (
        main(
            [
                "generate",
                "--base",
                TINY_GPT2,
                "--reward",
                str(rm),
                "--prompts",
                str(prompts),
                "--out",
                str(gen),
                "--beta",
                "5",
                "--top-k",
                "4",
                "--num-samples",
                "2",
                "--max-new-tokens",
                "3",
                "--device",
                "cpu",
                "--task",
                "toxicity",
            ]
        )
        == 0
    )
    recs = [json.loads(line) for line in gen.read_text().splitlines()]
    assert len(recs) == 3 and all(len(r["continuations"]) == 2 for r in recs)
    assert json.loads(gen.with_name(gen.name + ".meta.json").read_text())["method"] == "toy-vocab"
    summary = work / "scores" / "toy.csv"
    assert (
        main(
            [
                "score",
                "--generations",
                str(gen),
                "--metrics",
                "toxicity,diversity",
                "--out-scores",
                str(work / "scores" / "toy.jsonl"),
                "--out-summary",
                str(summary),
                "--n-boot",
                "20",
            ]
        )
        == 0
    )
    assert main(["tables", "--summaries", str(summary), "--out-dir", str(work / "tables")]) == 0
    assert "Toy (full vocab head)" in (work / "tables" / "toxicity.md").read_text()

    # latency (bench latency): the toy is a method of the sweep, timed from its trained folder.
    out = work / "latency"
    assert (
        main(
            [
                "latency",
                "--base",
                TINY_GPT2,
                "--reward",
                TINY_GPT2,
                "--reward-layers",
                "1",
                "--methods",
                "plain,toy-vocab",
                "--top-k",
                "2",
                "--batch-sizes",
                "1",
                "--new-tokens",
                "2",
                "--prompt-len",
                "4",
                "--min-run-time",
                "0.01",
                "--max-run-time",
                "0.05",
                "--min-samples",
                "2",
                "--retries",
                "0",
                "--device",
                "cpu",
                "--reward-model",
                f"toy-vocab={rm}",
                "--out-csv",
                str(out / "latency.csv"),
            ]
        )
        == 0
    )
    lat = list(csv.DictReader(open(out / "latency.csv")))
    assert [r["method"] for r in lat] == ["plain", "toy-vocab"]
    assert all(float(r["ms_per_token"]) > 0 for r in lat)

    # rank (bench rank): the toy's reward matrix over prefixes x vocabulary.
    out = work / "rank"
    assert (
        main(
            [
                "rank",
                "--model",
                f"toxicity:toy-vocab={rm}",
                "--prefixes",
                f"toxicity={gen}",
                "--n-prefixes",
                "8",
                "--cuts",
                "2",
                "--columns",
                "vocab",
                "--out-csv",
                str(out / "rank.csv"),
            ]
        )
        == 0
    )
    ranks = list(csv.DictReader(open(out / "rank.csv")))
    assert ranks and {r["method"] for r in ranks} == {"toy-vocab"}
    assert all(1 <= int(r["numerical_rank"]) <= 8 for r in ranks)  # at most the number of prefixes
