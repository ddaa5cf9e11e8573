"""Mechanisms behind the bad-input catalogue, tested directly: finite-only JSON writers, the decoding's refusal
of NaN rewards / logits, early writability checks and all-or-nothing outputs, output permissions, and the
absence of transformers' LOAD REPORT when a reward trunk keeps the first N blocks of a checkpoint."""

from __future__ import annotations

import logging
import os
import stat

import pytest
import torch

from bench.errors import BenchError, ConfigError, DataError, ModelError
from helpers_reliability import TINY_GPT2, make_reward_folder


# ---------------------------------------------------------------------------------------------- non-finite
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_json_writers_refuse_non_finite_numbers(tmp_path, value):
    from bench.utils.io import write_json, write_jsonl

    with pytest.raises(DataError, match=r"line 2: key 'labels.toxicity' is not a finite number"):
        write_jsonl(tmp_path / "a.jsonl", [{"labels": {"toxicity": 0.5}}, {"labels": {"toxicity": value}}])
    with pytest.raises(DataError, match=r"key 'scores\[1\]'"):
        write_json(tmp_path / "b.json", {"scores": [1.0, value]})
    assert not list(tmp_path.iterdir()), "a refused write left a file"


def test_processor_refuses_nan_reward_naming_the_folder(tmp_path):
    from bench.decoding.processors import TopKRewardLogitsProcessor
    from bench.rewards.registry import load_reward_model

    folder = make_reward_folder(tmp_path / "rad")
    rm = load_reward_model(folder)
    with torch.no_grad():
        rm.head.weight.fill_(float("nan"))
    proc = TopKRewardLogitsProcessor(rm, top_k=3, beta=1.0)
    ids = torch.tensor([[464, 3290]])
    with pytest.raises(ModelError, match=str(folder)):
        proc(ids, torch.randn(1, rm.vocab_size))


def test_processor_refuses_nan_logits_but_accepts_masked_ones():
    from bench.decoding.processors import TopKRewardLogitsProcessor

    proc = TopKRewardLogitsProcessor(None, top_k=2)
    scores = torch.tensor([[0.0, 1.0, -float("inf"), 2.0]])
    out = proc(torch.tensor([[1]]), scores)  # -inf: a token masked by an earlier processor, legal
    assert torch.isfinite(out).sum() == 2
    with pytest.raises(ModelError, match="logits"):
        proc(torch.tensor([[1]]), torch.tensor([[0.0, float("nan"), 1.0, 2.0]]))


@pytest.mark.parametrize("beta", [float("inf"), float("nan"), -1.0])
def test_processor_refuses_non_finite_or_negative_beta(beta):
    from bench.decoding.processors import TopKRewardLogitsProcessor

    with pytest.raises(ConfigError, match="finite"):
        TopKRewardLogitsProcessor(None, top_k=2, beta=beta)


def test_training_labels_outside_unit_interval_are_refused(tmp_path):
    from bench.training.collate import read_labeled_jsonl

    p = tmp_path / "t.jsonl"
    p.write_text('{"text": "a", "labels": {"toxicity": 0.5}}\n{"text": "b", "labels": {"toxicity": -2.0}}\n')
    with pytest.raises(DataError, match=r"line 2: label 'toxicity' = -2.0, expected a number in \[0, 1\]"):
        read_labeled_jsonl(p, ["toxicity"])


# ---------------------------------------------------------------------------------------------- outputs
def test_check_writable_refuses_folder_targets_and_file_parents(tmp_path):
    from bench.utils.io import check_writable

    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a folder"):
        check_writable(tmp_path / "dir")
    with pytest.raises(DataError, match="is a file"):
        check_writable(tmp_path / "file" / "out.json")
    with pytest.raises(DataError, match="is a file"):
        check_writable(folders=[tmp_path / "file"])
    check_writable(tmp_path / "new" / "deeper" / "out.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file"], "the check created something"


def test_atomic_outputs_all_or_nothing(tmp_path):
    from bench.utils.io import atomic_outputs

    a, b = tmp_path / "x" / "a.txt", tmp_path / "y" / "b.txt"
    with pytest.raises(RuntimeError):
        with atomic_outputs(a, b) as (ta, tb):
            ta.write_text("A")
            tb.write_text("B")
            raise RuntimeError("the work failed after writing")
    assert not tmp_path.joinpath("x").exists() and not tmp_path.joinpath("y").exists(), "debris after a failure"
    with atomic_outputs(a, b) as (ta, tb):
        ta.write_text("A")
        tb.write_text("B")
        assert not a.exists() and not b.exists(), "an output appeared before the block ended"
    assert a.read_text() == "A" and b.read_text() == "B"
    assert sorted(p.name for p in a.parent.iterdir()) == ["a.txt"]


def test_created_folders_removes_only_the_empty_ones_it_made(tmp_path):
    from bench.utils.io import created_folders

    (tmp_path / "keep").mkdir()
    with pytest.raises(ValueError):
        with created_folders(tmp_path / "keep" / "new" / "f.txt", tmp_path / "other" / "g.txt"):
            (tmp_path / "other" / "g.txt").write_text("written before the failure")
            raise ValueError
    assert (tmp_path / "keep").is_dir() and not (tmp_path / "keep" / "new").exists()
    assert (tmp_path / "other" / "g.txt").exists()


def test_reward_weights_have_the_usual_output_mode(tmp_path):
    old = os.umask(0o022)
    try:
        folder = make_reward_folder(tmp_path / "rad")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes == {"model.safetensors": 0o644, "reward_config.json": 0o644}, {k: oct(v) for k, v in modes.items()}


# ---------------------------------------------------------------------------------------------- noise
def test_truncated_trunk_loads_without_unexpected_keys_report(caplog):
    """Keeping the first block of a 30-block checkpoint: no LOAD REPORT (the dropped blocks are expected), and
    the kept block holds the checkpoint's weights (equal to the same block of the full model)."""
    from transformers.utils import logging as hf_logging

    from bench.models.embedded import embedded_model_path
    from bench.models.loading import load_causal_lm

    try:
        embedded_model_path("smollm2-135m")
    except BenchError:
        pytest.skip("SmolLM2 wheel not available")
    hf_logging.enable_propagation()
    caplog.set_level(logging.WARNING)
    try:
        short = load_causal_lm("embedded:smollm2-135m", num_layers=1)
    finally:
        hf_logging.disable_propagation()
    assert "LOAD REPORT" not in caplog.text and "UNEXPECTED" not in caplog.text, caplog.text[-2000:]
    assert short.config.num_hidden_layers == 1
    full = load_causal_lm("embedded:smollm2-135m")
    a = short.model.layers[0].self_attn.q_proj.weight
    assert torch.equal(a, full.model.layers[0].self_attn.q_proj.weight)


def test_random_backbone_refuses_more_layers_than_it_has():
    from bench.models.loading import load_causal_lm

    with pytest.raises(ModelError, match="num_layers=3 but the model has 2 layers"):
        load_causal_lm(TINY_GPT2, num_layers=3)


# ---------------------------------------------------------------------------------------------- resume: scores
def test_perplexity_cache_key_follows_a_local_models_weights(tmp_path):
    """A fluency model folder retrained in place: its cached perplexities are not reused (the version differs)."""
    from bench.metrics.fluency import FluencyConfig, PerplexityScorer
    from bench.metrics.pairs import CachedPerplexity
    from bench.models.loading import load_causal_lm

    folder = tmp_path / "lm"
    load_causal_lm(TINY_GPT2).save_pretrained(folder)
    v1 = CachedPerplexity(PerplexityScorer(FluencyConfig(TINY_GPT2, 2, "cpu", "float32")), str(folder)).version
    load_causal_lm(TINY_GPT2.replace("seed=0", "seed=3")).save_pretrained(folder)
    v2 = CachedPerplexity(PerplexityScorer(FluencyConfig(TINY_GPT2, 2, "cpu", "float32")), str(folder)).version
    assert v1 != v2
