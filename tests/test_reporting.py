"""Tables and figures from synthetic `bench score` summaries (hand-checked values), and the config schema."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bench.errors import ConfigError, DataError
from bench.reporting.tables import load_summaries, parse_task, to_latex, to_markdown, write_tables

REPO = Path(__file__).resolve().parents[1]


def _summary(path: Path, task: str, method: str, beta: float, k: int = 20, **metrics) -> Path:
    row = {
        "task": task,
        "method": method,
        "beta": beta,
        "top_k": k,
        "n_prompts": 4,
        "n_samples": 2,
        "dist1": 0.5,
        "dist2": 0.8,
        "dist3": 0.9,
        "n_nan": 0,
        "n_dropped_ppl": 0,
    }
    for name, (v, lo, hi) in metrics.items():
        row.update({name: v, f"{name}_lo": lo, f"{name}_hi": hi})
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(path, index=False)
    return path


@pytest.fixture
def summaries(tmp_path: Path) -> list[Path]:
    out = [
        _summary(
            tmp_path / "tox_plain.csv",
            "toxicity",
            "plain",
            0,
            avg_max_toxicity=(0.40, 0.30, 0.50),
            toxic_rate=(0.25, 0.0, 0.5),
            ppl=(30.0, 28.0, 32.0),
            ppl_gmean=(24.0, 23.0, 25.5),
        )
    ]
    for beta, tox in ((150, 0.10), (10, 0.30)):  # deliberately out of order
        for m in ("arm", "rad"):
            out.append(
                _summary(
                    tmp_path / f"tox_{m}_{beta}.csv",
                    "toxicity",
                    m,
                    beta,
                    avg_max_toxicity=(tox, tox - 0.05, tox + 0.05),
                    toxic_rate=(0.0, 0.0, 0.0),
                    ppl=(40.0 + beta / 10, 39.0, 60.0),
                    ppl_gmean=(30.0 + beta / 10, 29.0, 45.0),
                )
            )
    for target, ptype in (("positive", "negative"), ("negative", "positive")):
        task = f"sentiment-to-{target}-from-{ptype}"
        out.append(
            _summary(
                tmp_path / f"{task}_plain.csv",
                task,
                "plain",
                0,
                positive_rate=(0.5, 0.4, 0.6),
                ppl=(30.0, 29.0, 31.0),
                ppl_gmean=(20.0, 19.0, 21.0),
            )
        )
        rate = 0.9 if target == "positive" else 0.1
        out.append(
            _summary(
                tmp_path / f"{task}_rad.csv",
                task,
                "rad",
                20,
                positive_rate=(rate, rate - 0.1, rate + 0.1),
                ppl=(35.0, 33.0, 37.0),
                ppl_gmean=(22.0, 21.0, 23.0),
            )
        )
    return out


def test_parse_task():
    assert parse_task("toxicity") == ("toxicity", None, None)
    assert parse_task("sentiment-to-positive-from-neutral") == ("sentiment", "positive", "neutral")
    assert parse_task("other") == ("other", None, None)


def test_tables_rows_order_and_ci(summaries, tmp_path):
    df = load_summaries(summaries)
    written = write_tables(df, tmp_path / "tables")
    assert sorted(p.name for p in written) == sorted(
        f"{f}.{e}" for f in ("toxicity", "sentiment") for e in ("csv", "md", "tex")
    )
    tox = pd.read_csv(tmp_path / "tables" / "toxicity.csv")
    # plain first, then RAD before ARM (paper order), beta ascending within a method
    assert list(zip(tox["method"], tox["beta"])) == [("plain", 0), ("rad", 10), ("rad", 150), ("arm", 10), ("arm", 150)]
    assert {"avg_max_toxicity_lo", "avg_max_toxicity_hi", "toxic_rate", "ppl", "dist3", "source_file"} <= set(
        tox.columns
    )
    md = (tmp_path / "tables" / "toxicity.md").read_text()
    header = md.splitlines()[0]
    assert header == (
        "| Method | β | k | Avg. max toxicity | Toxic rate | PPL | PPL (geo.) | Dist-1 | Dist-2 | Dist-3 |"
    )
    # plain: 0.400 ± (0.50-0.30)/2 ; PPL 30.0 ± 2.0 ; geometric mean 24.0 ± 1.25 (shown to 1 digit) ; beta a dash
    assert (
        "| Plain (top-k) | – | 20 | 0.400 ± 0.100 | 0.250 ± 0.250 | 30.0 ± 2.0 | 24.0 ± 1.2 | 0.500 | 0.800 | 0.900 |"
    ) in md
    assert "| RAD | 150 | 20 | 0.100 ± 0.050 |" in md
    sent = pd.read_csv(tmp_path / "tables" / "sentiment.csv")
    assert list(zip(sent["target"], sent["prompt_type"], sent["method"])) == [
        ("negative", "positive", "plain"),
        ("negative", "positive", "rad"),
        ("positive", "negative", "plain"),
        ("positive", "negative", "rad"),
    ]
    smd = (tmp_path / "tables" / "sentiment.md").read_text()
    assert "| positive | negative | RAD | 20 | 20 | 90.0 ± 10.0 | 35.0 ± 2.0 | 22.0 ± 1.0 |" in smd


def test_latex_escapes_and_groups(summaries):
    df = load_summaries(summaries)
    tex = to_latex(df[df["family"] == "sentiment"], "sentiment")
    assert tex.count(r"\midrule") == 2  # header rule + one between the two (target, prompts) blocks
    assert r"90.0 $\pm$ 10.0" in tex and r"$\beta$" in tex and r"Positive rate (\%)" in tex
    assert r"\begin{tabular}{lllrrrrrrrr}" in tex and tex.rstrip().endswith(r"\end{tabular}")
    md = to_markdown(df[df["family"] == "toxicity"], "toxicity")
    assert sum(line.startswith("| ") for line in md.splitlines()) == 1 + 5  # header + 5 rows


def test_missing_ci_and_missing_columns(tmp_path):
    p = tmp_path / "s.csv"
    pd.DataFrame(
        [{"task": "toxicity", "method": "rad", "beta": 5, "top_k": 10, "avg_max_toxicity": 0.2, "ppl": 12.34}]
    ).to_csv(p, index=False)
    md = to_markdown(load_summaries([p]), "toxicity")
    assert "| RAD | 5 | 10 | 0.200 | – | 12.3 | – | – | – |" in md
    bad = tmp_path / "bad.csv"
    pd.DataFrame([{"task": "toxicity", "beta": 5}]).to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"bad\.csv: missing column\(s\) \['method', 'top_k'\]"):
        load_summaries([bad])
    with pytest.raises(DataError, match="duplicate run task=toxicity method=rad beta=5"):
        load_summaries([p, p])
    with pytest.raises(DataError, match="not found"):
        load_summaries([tmp_path / "nope.csv"])


def test_figures_written(summaries, tmp_path):
    from bench.reporting.figures import write_figures

    paths = write_figures(load_summaries(summaries), tmp_path / "fig")
    assert sorted(p.name for p in paths) == ["sentiment_tradeoff.png", "toxicity_tradeoff.png"]
    import matplotlib.image as mpimg

    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpimg.imread(p)
        assert img.shape[0] > 300 and img.std() > 0.01  # not a blank canvas
    # the sentiment figure has one panel per (target, prompt type): wider than the one-panel toxicity figure
    assert mpimg.imread(tmp_path / "fig" / "sentiment_tradeoff.png").shape[1] > mpimg.imread(paths[1]).shape[1]


def test_cli_tables_and_figures(summaries, tmp_path, capsys):
    from bench.cli import main

    assert (
        main(["tables", "--summaries", *map(str, summaries), "--out-dir", str(tmp_path / "t"), "--formats", "csv,md"])
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [
        "sentiment.csv",
        "sentiment.md",
        "toxicity.csv",
        "toxicity.md",
    ]
    assert main(["figures", "--summaries", str(summaries[0]), "--out-dir", str(tmp_path / "f")]) == 0
    assert [p.name for p in (tmp_path / "f").iterdir()] == ["toxicity_tradeoff.png"]
    assert main(["tables", "--summaries", str(tmp_path / "missing.csv"), "--out-dir", str(tmp_path)]) == 2


# ------------------------------------------------------------------------------------------ config schema
@pytest.mark.parametrize("name", ["default", "test", "paper"])
def test_shipped_configs_validate(name):
    from bench.config import load_config

    cfg = load_config(REPO / "config" / f"{name}.yaml")
    assert cfg["name"] == name
    assert set(cfg["tasks"]) == {"toxicity", "sentiment"}
    assert cfg["training"]["parametrizations"] == ["rad", "arm", "arm-baseline", "arm-mlp", "arm-distill"]
    assert cfg["tasks"]["toxicity"]["top_k"] and cfg["tasks"]["sentiment"]["targets"]
    assert cfg["latency"]["methods"][0] == "plain" and cfg["rank"]["cuts"] >= 1  # analyses: same schema, filled


def _default_raw() -> dict:
    return yaml.safe_load((REPO / "config" / "default.yaml").read_text())


def test_schema_rejects_unknown_key_and_wrong_type():
    from bench.config import validate_config

    raw = _default_raw()
    raw["training"]["stpes"] = 3
    with pytest.raises(ConfigError, match=r"key 'training'.*'stpes' was unexpected"):
        validate_config(raw)
    raw = _default_raw()
    raw["generation"]["num_samples"] = "four"
    with pytest.raises(ConfigError, match=r"key 'generation.num_samples': 'four' is not of type 'integer'"):
        validate_config(raw)
    raw = _default_raw()
    raw["tasks"]["toxicity"]["train"][0]["dataset"] = "imdb"
    with pytest.raises(ConfigError, match=r"key 'tasks.toxicity.train.0.dataset'"):
        validate_config(raw)
    raw = _default_raw()
    raw["training"]["overrides"]["arm-distil"] = {"steps": 3}  # names come from the registry
    with pytest.raises(ConfigError, match=r"'arm-distil' is not one of \['rad', 'arm'"):
        validate_config(raw)
    raw = _default_raw()
    raw["latency"]["methods"] = ["plain", "rad-lop"]
    with pytest.raises(ConfigError, match=r"key 'latency.methods.1': 'rad-lop' is not one of"):
        validate_config(raw)
    raw = _default_raw()
    raw["rank"]["n_prefixes"] = 1  # the analyses' keys are validated with the rest
    with pytest.raises(ConfigError, match=r"key 'rank.n_prefixes': 1 is less than the minimum of 2"):
        validate_config(raw)
    raw = _default_raw()
    raw["tasks"]["sentiment"]["steer_attribute"] = "toxicity"
    with pytest.raises(ConfigError, match=r"tasks.sentiment.steer_attribute"):
        validate_config(raw)


def test_schema_fills_defaults_and_resources():
    from bench.config import resource, validate_config
    from bench.rewards.registry import default_names, names

    raw = {
        "name": "x",
        "models": {"base": "b", "reward_backbone": "r"},
        "tasks": {
            "toxicity": {
                "attributes": ["toxicity"],
                "steer_attribute": "toxicity",
                "train": [{"dataset": "jigsaw", "source": "j.csv"}],
                "prompts": {"dataset": "rtp", "source": "p"},
                "betas": [10],
            }
        },
        "resources": {"default": {"mem_mb": 1234}, "train": {"gpu": 1}},
        "latency": {"retries": 7},
    }
    cfg = validate_config(copy.deepcopy(raw))
    assert cfg["work_dir"] == "runs/x" and cfg["results_dir"] == "results" and cfg["seed"] == 0
    assert cfg["training"]["max_steps"] == 300 and cfg["generation"]["num_samples"] == 4
    assert cfg["training"]["parametrizations"] == default_names()  # default: the registry's in_default entries
    assert "arm-lowrank-r4" in names() and "arm-lowrank-r4" not in default_names()
    assert cfg["tasks"]["toxicity"]["top_k"] == [20] and cfg["tasks"]["toxicity"]["direction"] == "away"
    assert cfg["tasks"]["toxicity"]["train"][0]["n_train"] == 1000
    assert cfg["latency"]["retries"] == 7 and cfg["latency"]["min_samples"] == 4 and cfg["rank"]["methods"] is None
    assert [resource(cfg, "train", k) for k in ("threads", "mem_mb", "runtime", "gpu")] == [1, 1234, 60, 1]
    assert resource(cfg, "generate", "mem_mb") == 1234 and resource(cfg, "generate", "gpu") == 0


# ------------------------------------------------------------------------------------------ reward models
def _reward_folder(root: Path, task: str, param: str, best: int, steps: int, final: dict) -> Path:
    import json

    d = root / task / param
    d.mkdir(parents=True)
    rows = [{"step": s, "heldout_mse": 0.3 - 0.01 * s, "heldout_auc": 0.5 + 0.01 * s} for s in range(10, steps + 1, 10)]
    (d / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "train_summary.json").write_text(
        json.dumps(
            {
                "parametrization": param,
                "steps": steps,
                "max_steps": 100,
                "best_step": best,
                "stop_reason": "early_stopping" if steps < 100 else "max_steps",
                "examples_seen": steps * 16,
                "examples_seen_at_best": best * 16,
                "epochs": 0.5,
                "train_seconds": 12.5,
                "final": final,
            }
        )
    )
    return d


def test_reward_models_table_and_figure(tmp_path):
    from bench.cli import main
    from bench.reporting.tables import load_reward_models

    folders = [
        _reward_folder(
            tmp_path,
            "toxicity",
            "arm-distill",
            20,
            40,
            {
                "heldout_mse": 0.11,
                "heldout_auc": 0.8,
                "heldout_acc": 0.75,
                "heldout_objective/distill_forward": 0.012,
                "heldout_objective/distill_candidates": 0.034,
            },
        ),
        _reward_folder(
            tmp_path, "toxicity", "rad", 100, 100, {"heldout_mse": 0.09, "heldout_auc": 0.93, "heldout_acc": 0.88}
        ),
    ]
    df = load_reward_models(folders)
    assert list(df["parametrization"]) == ["rad", "arm-distill"]  # paper order
    distill = df.iloc[1]
    assert (distill["task"], distill["best_step"], distill["steps"], distill["examples_seen"]) == (
        "toxicity",
        20,
        40,
        640,
    )
    assert distill["teacher_mse_prefixes"] == 0.012 and distill["stop_reason"] == "early_stopping"
    assert pd.isna(df.iloc[0]["teacher_mse_candidates"])
    out = tmp_path / "out"
    assert main(["tables", "--reward-models", *map(str, folders), "--out-dir", str(out), "--formats", "csv,md"]) == 0
    md = (out / "reward_models.md").read_text()
    assert (
        "| toxicity | ARM (distilled) | 20 / 40 / 100 | 640 | 0.1100 | 0.800 | 0.750 | 0.0120 | 0.0340 | 12 | early_stopping |"
        in md
    )
    assert main(["figures", "--reward-models", *map(str, folders), "--out-dir", str(out)]) == 0
    assert (out / "reward_models_heldout.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["tables", "--reward-models", str(tmp_path / "nope"), "--out-dir", str(out)]) == 2
