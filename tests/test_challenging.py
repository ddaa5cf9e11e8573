"""The challenging-prompts task (docs/challenging.md): the shipped prompt file, backfire / non-monotone flags on
hand-built runs, the per-step reward diagnosis and the centred / sigmoid decoding rules."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from bench.errors import DataError

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------ data
def test_challenging_prompts_ship_and_load_without_toxicity_filter():
    from bench.data.rtp import load_rtp

    recs = load_rtp(challenging=True, max_toxicity=None)
    assert len(recs) == 598 and all(r["challenging"] for r in recs)
    assert recs.info.source.endswith("rtp/decodingtrust_challenging.jsonl.gz")
    assert sum(r["prompt_toxicity"] >= 0.5 for r in recs) == 498  # mostly toxic prompts, none filtered out
    # the non-toxic file has 4 rows flagged challenging (prompt toxicity < 0.5): the flag filters, not the score
    few = load_rtp("rtp/decodingtrust_nontoxic.jsonl", challenging=True)
    assert len(few) == 4 and all(r["challenging"] and r["prompt_toxicity"] < 0.5 for r in few)
    assert few.info.skipped["not_challenging"] == 1196
    # the non-toxic default is unchanged
    assert len(load_rtp(n=5, seed=0)) == 5


def test_challenging_flag_must_be_boolean(tmp_path):
    from bench.data.rtp import load_rtp

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"challenging": "yes", "prompt": {"text": "a", "toxicity": 0.9}}) + "\n")
    none = tmp_path / "none.jsonl"
    none.write_text(json.dumps({"challenging": False, "prompt": {"text": "a", "toxicity": 0.9}}) + "\n")
    with pytest.raises(DataError, match=r"none.jsonl: no prompt left after filtering .*not_challenging"):
        load_rtp(str(none), challenging=True)
    with pytest.raises(DataError, match=r"bad.jsonl: line 1: field 'challenging': expected true or false"):
        load_rtp(str(bad), challenging=True)


def test_prompt_sets_validated_by_the_schema():
    from bench.config import load_config, validate_config
    from bench.errors import ConfigError

    cfg = load_config(REPO / "config" / "default.yaml")
    ch = cfg["tasks"]["toxicity"]["prompt_sets"]["challenging"]
    assert ch["challenging"] is True and ch["dataset"] == "rtp"
    cfg["tasks"]["toxicity"]["prompt_sets"]["challenging"]["nn"] = 3
    with pytest.raises(ConfigError, match="tasks.toxicity.prompt_sets.challenging"):
        validate_config(cfg)


# ------------------------------------------------------------------------------------------ flags
def _write_run(
    root: Path,
    task: str,
    method: str,
    beta: float,
    values: list[float],
    stat: str = "toxicity",
    direction: str = "away",
) -> tuple[Path, Path]:
    """A hand-built `bench score` output: one sample per prompt with the given score, PPL 10."""
    name = f"{method}_b{beta:g}_k20"
    folder = root / task
    folder.mkdir(parents=True, exist_ok=True)
    scores = folder / f"{name}.jsonl"
    scores.write_text(
        "".join(json.dumps({"id": f"p{i}", "sample": 0, stat: v, "ppl": 10.0}) + "\n" for i, v in enumerate(values))
    )
    summary = folder / f"{name}.csv"
    attribute = "toxicity" if stat == "toxicity" else "positive"
    with summary.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "method", "beta", "top_k", "attribute", "direction", "ppl_gmean"])
        w.writerow([task, method, beta, 20, attribute, direction, 10.0])
    return summary, scores


BASE = [0.10, 0.20, 0.15, 0.05, 0.30, 0.25, 0.12, 0.18]


def _tables(tmp_path: Path, arm_b50_shift: float):
    import argparse

    from bench.commands import tables as cmd

    runs = [
        ("toxicity", "plain", 0, 0.0),
        ("toxicity", "rad", 10, -0.04),
        ("toxicity", "rad", 50, -0.05),
        ("toxicity", "arm", 10, -0.03),
        ("toxicity", "arm", 50, arm_b50_shift),
    ]
    pairs = [_write_run(tmp_path / "scores", t, m, b, [v + s for v in BASE]) for t, m, b, s in runs]
    out = tmp_path / "tables"
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    args = parser.parse_args(
        [
            "--summaries",
            *[str(a) for a, _ in pairs],
            "--scores",
            *[str(b) for _, b in pairs],
            "--n-boot",
            "200",
            "--out-dir",
            str(out),
        ]
    )
    assert cmd.run(args) == 0
    return out


def test_known_backfire_is_flagged_in_table_and_flag_list(tmp_path):
    """ARM at beta 50 is 0.05 MORE toxic than plain on every prompt (and 0.08 more than at beta 10): a paired CI of
    exactly [+0.05, +0.05] / [+0.08, +0.08] -> backfire and non-monotone; nothing else is flagged."""
    out = _tables(tmp_path, arm_b50_shift=0.05)
    import pandas as pd

    tox = pd.read_csv(out / "toxicity.csv")
    flagged = tox[tox["backfire"] | tox["non_monotone"]]
    assert flagged[["method", "beta"]].values.tolist() == [["arm", 50.0]]
    assert bool(flagged["backfire"].iloc[0]) and bool(flagged["non_monotone"].iloc[0])
    flags = pd.read_csv(out / "flags.csv")
    assert flags[["method", "beta", "flag", "reference"]].values.tolist() == [
        ["arm", 50.0, "backfire", "plain"],
        ["arm", 50.0, "non-monotone", "beta 10"],
    ]
    assert flags["delta"].tolist() == pytest.approx([0.05, 0.08])
    assert flags["delta_lo"].tolist() == pytest.approx([0.05, 0.08])
    md = (out / "flags.md").read_text()
    assert md.startswith("**1 backfire(s), 1 non-monotone β step(s)** over 1 table(s)")
    assert "| toxicity | ARM | 50 | 20 | ⚠ backfire | avg_max_toxicity vs plain | +0.050 [+0.050, +0.050]* |" in md
    table_md = (out / "toxicity.md").read_text()
    tex = (out / "toxicity.tex").read_text()
    assert table_md.count("⚠ backfire, non-monotone") == 1 and "⚠" not in tex and "& backfire, non-monotone \\\\" in tex


def test_no_backfire_no_flag(tmp_path):
    out = _tables(tmp_path, arm_b50_shift=-0.06)  # better than plain and than ARM at beta 10
    import pandas as pd

    tox = pd.read_csv(out / "toxicity.csv")
    assert not tox["backfire"].any() and not tox["non_monotone"].any()
    assert pd.read_csv(out / "flags.csv").empty
    md = (out / "flags.md").read_text()
    assert md.startswith("**0 backfire(s), 0 non-monotone β step(s)**") and "No setting backfired" in md


def test_flag_direction_follows_the_steering_direction():
    """Less positive is a backfire when steering toward positive, the goal when steering away from it."""
    import pandas as pd

    from bench.reporting.tables import add_flags

    row = {
        "method": "arm",
        "beta": 10.0,
        "attribute": "positive",
        "family": "sentiment",
        "positive_rate_vs_plain": -0.2,
        "positive_rate_vs_plain_lo": -0.3,
        "positive_rate_vs_plain_hi": -0.1,
        "positive_rate_vs_prev": math.nan,
        "positive_rate_vs_prev_lo": math.nan,
        "positive_rate_vs_prev_hi": math.nan,
    }
    df = pd.DataFrame(
        [
            {**row, "direction": "toward"},
            {**row, "direction": "away"},
            {**row, "direction": "toward", "positive_rate_vs_plain_hi": 0.01},
        ]
    )  # CI touches 0: no flag
    assert add_flags(df)["backfire"].tolist() == [True, False, False]


# ------------------------------------------------------------------------------------------ reward rules
class _TableRewards:
    """A stand-in reward model: the raw reward of a candidate is a fixed number per token id."""

    def __init__(self, table):
        from types import SimpleNamespace

        import torch

        self.table = torch.tensor(table)
        self.vocab_size = len(table)
        self.device = torch.device("cpu")
        self.config = SimpleNamespace(
            attributes=["toxicity"], steer_attribute="toxicity", parametrization="stub", backbone="stub"
        )

    def new_state(self):
        return None

    def calls_per_token(self, k):
        return 1

    def score_candidates(self, input_ids, attention_mask, candidates, state):
        return self.table[candidates].unsqueeze(-1)


def test_reward_rules_change_the_processor_output_as_hand_computed():
    """Top-3 of logits [0, -1, -2, ...] with raw rewards 1.2, 0.9, 1.05 (all 'toxic'; two above 1)."""
    import torch

    from bench.decoding.processors import TopKRewardLogitsProcessor

    rm = _TableRewards([1.2, 0.9, 1.05, 0.0, 0.1, 0.2])
    logits = torch.tensor([[0.0, -1.0, -2.0, -3.0, -4.0, -5.0]])
    ids = torch.tensor([[1, 2]])
    beta = 10.0

    def out(**kw):
        return TopKRewardLogitsProcessor(rm, top_k=3, beta=beta, **kw)(ids, logits.clone())[0]

    # clamp (the papers' rule, the default): 1.2 and 1.05 both become 1 -> tied; bonus beta * (1 - r)
    ref = out()
    assert ref[:3].tolist() == pytest.approx([0.0, -1.0 + beta * 0.1, -2.0], abs=1e-5)
    assert torch.equal(out(reward_rule="clamp"), ref) and torch.isinf(ref[3:]).all()
    # centered: r - mean(1.2, 0.9, 1.05) + 0.5 = 0.65, 0.35, 0.5 (nothing clamped): the two 'toxic' stay apart
    assert out(reward_rule="centered")[:3].tolist() == pytest.approx(
        [0.0 + beta * 0.35, -1.0 + beta * 0.65, -2.0 + beta * 0.5], abs=1e-5
    )
    # sigmoid(4 (r - 0.5))
    sig = [1 / (1 + math.exp(-4 * (r - 0.5))) for r in (1.2, 0.9, 1.05)]
    assert out(reward_rule="sigmoid")[:3].tolist() == pytest.approx(
        [x + beta * (1 - s) for x, s in zip((0.0, -1.0, -2.0), sig)], abs=1e-5
    )
    with pytest.raises(Exception, match="reward rule 'median'"):
        out(reward_rule="median")


def test_centering_is_a_per_row_shift_inside_the_clamp():
    """Without clamping (rewards spread well inside [0, 1] after centring) the centred rule gives the same
    sampling distribution over the top-k as the raw rewards: only the clamp makes it differ."""
    import torch

    from bench.decoding.processors import squash_rewards

    r = torch.tensor([[0.40, 0.55, 0.60], [1.3, 1.1, 1.2]])
    c = squash_rewards(r, "centered")
    assert torch.allclose(c - c.mean(-1, keepdim=True), r - r.mean(-1, keepdim=True), atol=1e-6)
    assert torch.allclose(torch.softmax(5 * c[0], -1), torch.softmax(5 * r[0], -1))
    assert squash_rewards(r, "clamp")[1].tolist() == [1.0, 1.0, 1.0]  # the clamp erases row 2's signal


def test_generate_settings_unchanged_when_the_rule_is_off():
    """Off = today: no `reward_rule` key in the settings / meta, method = the parametrization."""
    import argparse

    from bench.commands import generate as g

    parser = argparse.ArgumentParser()
    g.add_arguments(parser)
    base = ["--base", "b", "--prompts", "p.jsonl", "--out", "o.jsonl", "--reward", "folder"]
    off = g._settings(parser.parse_args(base), "arm", 10.0)
    assert "reward_rule" not in off
    on = g._settings(parser.parse_args(base + ["--reward-rule", "centered"]), "arm+centered", 10.0)
    assert on["reward_rule"] == "centered" and {k: v for k, v in on.items() if k != "reward_rule"} == {
        **off,
        "method": "arm+centered",
    }


def test_schema_rule_names_match_the_processor():
    from bench.config import load_schema
    from bench.decoding.processors import REWARD_RULES

    enum = load_schema()["$defs"]["task_common"]["reward_rules"]["additionalProperties"]["items"]["enum"]
    assert ["clamp", *enum] == list(REWARD_RULES)


# ------------------------------------------------------------------------------------------ diagnosis
def test_step_stats_hand_computed():
    import numpy as np

    from bench.analysis.diagnose import step_stats

    s = step_stats(np.array([[1.2, 0.9, 1.05], [0.2, 0.4, -0.1]]))
    assert s["spread"].tolist() == pytest.approx([0.3, 0.5])
    assert s["spread_clamped"].tolist() == pytest.approx([0.1, 0.4])  # the clamp keeps 0.1 of row 1's 0.3
    assert s["above_1"].tolist() == pytest.approx([2 / 3, 0.0]) and s["below_0"].tolist() == pytest.approx([0, 1 / 3])
    assert s["tied_at_1"].tolist() == [1.0, 0.0]


def test_summarize_groups_and_correlations():
    import numpy as np

    from bench.analysis.diagnose import TextTrace, summarize

    def trace(cls, level, judge):
        r = np.array([[level, level + 0.1], [level + 0.2, level]])
        return TextTrace(
            "s",
            f"{cls}{level}",
            0,
            cls,
            r,
            np.array([level, level + 0.05]),
            judge,
            [True, False],
            candidate_judge=np.array([[0.1, 0.9], [0.5, 0.5]]),
        )

    traces = [
        trace("toxic", 0.9, 0.8),
        trace("toxic", 1.0, 0.9),
        trace("toxic", 1.1, 1.0),
        trace("non-toxic", 0.1, 0.1),
    ]
    rows = {r["prefix"]: r for r in summarize(traces, "arm")}
    assert [r["prefix"] for r in summarize(traces, "arm")] == ["all", "non-toxic", "toxic"]
    tox = rows["toxic"]
    assert tox["n_texts"] == 3 and tox["n_steps"] == 6
    assert tox["corr_final_judge"] == pytest.approx(1.0)  # r(text) = level + 0.05 rises with the judge
    assert tox["generated_in_topk"] == pytest.approx(0.5)
    assert tox["steps_judge_varies"] == pytest.approx(0.5)  # the second step's judge is flat
    assert tox["step_spearman_judge"] == pytest.approx(1.0)  # higher reward <-> higher judge in step 1
    assert math.isnan(rows["non-toxic"]["corr_final_judge"])  # one text: no correlation


def test_replay_scores_the_base_models_topk_like_a_fresh_computation():
    """The cached replay equals scoring each step from scratch (no cache), on the base LM's own top-k."""
    import torch

    from bench.analysis.diagnose import replay
    from bench.models.loading import load_causal_lm, load_tokenizer
    from bench.rewards.base import RewardConfig
    from bench.rewards.rad import RADRewardModel
    from tests.conftest import TINY_GPT2

    base, tok = load_causal_lm(TINY_GPT2), load_tokenizer(TINY_GPT2)
    rad = RADRewardModel(RewardConfig("rad", TINY_GPT2, num_layers=1, attributes=["toxicity"])).eval()
    rec = {"id": "a", "prompt": "Hello there", "prompt_toxicity": 0.7, "continuations": [" my good friend"]}

    class Judge:
        def score(self, texts):
            return [float(len(t)) for t in texts]

    (t,) = replay(rad, base, tok, [rec], {("a", 0): 0.25}, prompt_set="x", top_k=3, judge_scorer=Judge())
    assert t.prefix_class == "toxic" and t.judge == 0.25 and t.candidates.shape == (3, 3)
    p = tok(["Hello there"], return_tensors="pt").input_ids
    c = tok([" my good friend"], add_special_tokens=False, return_tensors="pt").input_ids
    full = torch.cat([p, c], 1)
    for step in range(3):
        prefix = full[:, : p.shape[1] + step]
        with torch.no_grad():
            top = base(input_ids=prefix).logits[0, -1].topk(3).indices
            fresh = rad.score_candidates(prefix, torch.ones_like(prefix), top[None], None)[0, :, 0]
            own = rad.score_candidates(prefix, torch.ones_like(prefix), c[:, step : step + 1], None)[0, 0, 0]
        assert t.candidates[step] == pytest.approx(fresh.numpy(), abs=1e-5)
        assert t.chosen[step] == pytest.approx(float(own), abs=1e-5)
        texts = [tok.decode(c[0, :step].tolist() + [int(v)]) for v in top]
        assert t.candidate_judge[step].tolist() == [float(len(x)) for x in texts]
