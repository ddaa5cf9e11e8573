"""Progress a cluster user can read: periodic log lines with done/total, rate and ETA when stderr is not a
terminal, a tqdm bar only on a terminal, and never a carriage return in a log file."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import ConfigError
from bench.utils import progress as P
from tests.conftest import REPO, TINY_GPT2

LOGGER = "bench.test_progress"


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_lines_at_percent_bands_and_at_the_end(monkeypatch, caplog):
    monkeypatch.setattr(P, "on_terminal", lambda: False)
    monkeypatch.setenv(P.ENV_SECONDS, "1e9")  # never by time: only the 25% bands
    monkeypatch.setenv(P.ENV_PERCENT, "25")
    caplog.set_level(logging.INFO, logger=LOGGER)
    with P.Progress(8, "stage", "steps", logger=logging.getLogger(LOGGER)) as bar:
        for _ in range(8):
            bar.update(1)
            bar.set_postfix(loss="0.5")
    lines = _lines(caplog)
    assert [line.split(",")[0] for line in lines] == [
        "stage: 2/8 steps (25.0%)",
        "stage: 4/8 steps (50.0%)",
        "stage: 6/8 steps (75.0%)",
        "stage: 8/8 steps (100.0%)",
    ]
    assert all("steps/s" in x or "s/step" in x for x in lines) and all("elapsed " in x for x in lines)
    assert all("ETA " in x for x in lines[:-1]) and lines[-1].endswith("done, loss 0.5")


def test_interval_zero_logs_every_update_and_resume_counts_only_new_work(monkeypatch, caplog):
    monkeypatch.setattr(P, "on_terminal", lambda: False)
    monkeypatch.setenv(P.ENV_SECONDS, "0")
    monkeypatch.setenv(P.ENV_PERCENT, "0")
    caplog.set_level(logging.INFO, logger=LOGGER)
    items = list(P.progress(range(3), "work", "items", logger=logging.getLogger(LOGGER)))
    assert items == [0, 1, 2]
    with P.Progress(10, "resumed", "steps", initial=7, logger=logging.getLogger(LOGGER)) as bar:
        bar.update(1)
    lines = _lines(caplog)
    assert [x.split(",")[0] for x in lines] == [
        "work: 1/3 items (33.3%)",
        "work: 2/3 items (66.7%)",
        "work: 3/3 items (100.0%)",  # the end: one closing line
        "resumed: 8/10 steps (80.0%)",
        "resumed: 8/10 steps (80.0%)",
    ]
    assert "ETA " in lines[3] and lines[4].endswith(", done")
    caplog.clear()
    with P.Progress(4, "inner", logger=logging.getLogger(LOGGER), lines=False) as bar:
        bar.update(4)
    with P.Progress(4, "off", logger=logging.getLogger(LOGGER), enabled=False) as bar:
        bar.update(4)
    assert _lines(caplog) == []  # an inner loop (lines=False) and a disabled one stay silent


def test_terminal_gets_a_bar_not_lines(monkeypatch, caplog, capsys):
    monkeypatch.setattr(P, "on_terminal", lambda: True)
    monkeypatch.setenv(P.ENV_SECONDS, "0")
    caplog.set_level(logging.INFO, logger=LOGGER)
    with P.Progress(5, "tty", logger=logging.getLogger(LOGGER)) as bar:
        bar.update(5)
    assert _lines(caplog) == []
    assert "tty" in capsys.readouterr().err  # tqdm drew on stderr


def test_durations_and_bad_env(monkeypatch):
    assert [P.duration(x) for x in (0.4, 59, 61, 3599, 3600 + 125)] == ["0s", "59s", "1m01s", "59m59s", "1h02m"]
    assert [P._rate(r, u) for r, u in ((3, "texts"), (0.25, "prefixes"), (0.5, "steps"))] == [
        "3.00 texts/s",
        "4.0 s/prefix",
        "2.0 s/step",
    ]
    monkeypatch.setenv(P.ENV_SECONDS, "soon")
    with pytest.raises(ConfigError, match="BENCH_PROGRESS_SECONDS='soon'"):
        P.Progress(3, "x")
    monkeypatch.setenv(P.ENV_SECONDS, "-1")
    with pytest.raises(ConfigError, match="expected a number >= 0"):
        P.Progress(3, "x")


def _bench(args: list[str], log: Path) -> None:
    env = dict(
        os.environ, BENCH_PROGRESS_SECONDS="0", BENCH_PROGRESS_PERCENT="0", BENCH_TEST_THREADS="1", OMP_NUM_THREADS="1"
    )
    with open(log, "wb") as fh:
        rc = subprocess.run(
            [sys.executable, "-m", "bench", *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=fh
        ).returncode
    assert rc == 0, log.read_text(errors="replace")[-3000:]


@pytest.mark.slow
def test_generate_and_score_logs_have_progress_lines_without_carriage_returns(tmp_path):
    """`bench generate` and `bench score` (toxicity + perplexity) with stderr to a file, as in a rule's log."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"id": f"p{i}", "prompt": f"The weather today {i}"}) + "\n" for i in range(20)),
        encoding="utf-8",
    )
    gens, gen_log = tmp_path / "gen.jsonl", tmp_path / "generate.log"
    _bench(
        [
            "generate",
            "--base",
            TINY_GPT2,
            "--prompts",
            str(prompts),
            "--out",
            str(gens),
            "--num-samples",
            "4",
            "--max-new-tokens",
            "4",
            "--top-k",
            "5",
            "--batch-size",
            "10",
            "--device",
            "cpu",
            "--task",
            "toxicity",
        ],
        gen_log,
    )
    score_log = tmp_path / "score.log"
    _bench(
        [
            "score",
            "--generations",
            str(gens),
            "--metrics",
            "toxicity,fluency",
            "--toxicity-scorer",
            "profanity-check",
            "--fluency-model",
            TINY_GPT2,
            "--fluency-batch-size",
            "2",  # 64 texts a batch
            "--out-scores",
            str(tmp_path / "s.jsonl"),
            "--out-summary",
            str(tmp_path / "s.csv"),
            "--device",
            "cpu",
            "--n-boot",
            "10",
        ],
        score_log,
    )
    for log in (gen_log, score_log):
        assert b"\r" not in log.read_bytes(), log
    text = gen_log.read_text()
    lines = [x.split(": generate: ")[1] for x in text.splitlines() if ": generate: " in x]
    assert [x.split(",")[0] for x in lines] == ["10/20 prompts (50.0%)", "20/20 prompts (100.0%)"], text
    assert "ETA " in lines[0] and ("prompts/s" in lines[0] or "s/prompt" in lines[0]) and lines[1].endswith(", done")
    text = score_log.read_text()
    for stage in ("toxicity", "perplexity"):  # ~80 distinct texts (a tiny model repeats itself now and then)
        lines = [x.split(f": {stage}: ")[1] for x in text.splitlines() if f": {stage}: " in x]
        n = int(lines[-1].split("/")[0])
        assert n > 64 and lines[-1].startswith(f"{n}/{n} texts (100.0%)") and lines[-1].endswith(", done"), text
        if stage == "perplexity":  # batches of 64 texts: one line before the end, with its ETA
            assert len(lines) == 2 and lines[0].startswith(f"64/{n} texts") and "ETA " in lines[0], text


def test_training_logs_steps_with_rate_eta_and_loss(tmp_path, monkeypatch, caplog):
    from bench.models.loading import load_tokenizer
    from bench.training.trainer import TrainConfig, Trainer
    from bench.utils.io import write_jsonl
    from tests.test_training import _data, _model, synthetic_rows

    monkeypatch.setattr(P, "on_terminal", lambda: False)
    monkeypatch.setenv(P.ENV_SECONDS, "0")
    caplog.set_level(logging.INFO, logger="bench.training.trainer")
    write_jsonl(tmp_path / "train.jsonl", synthetic_rows(40, 0))
    cfg = TrainConfig(steps=4, batch_size=4, checkpoint_every=0, eval_every=0, device="cpu")
    Trainer(
        _model("arm"),
        cfg,
        _data(tmp_path / "train.jsonl"),
        None,
        tmp_path / "rm",
        pad_id=load_tokenizer(TINY_GPT2).pad_token_id,
    ).train()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("train arm: ")]
    assert [x.split(",")[0] for x in lines] == [f"train arm: {i}/4 steps ({25.0 * i:.1f}%)" for i in (1, 2, 3, 4)]
    assert all("ETA " in x and ", loss " in x for x in lines[:3]) and ", done, loss " in lines[3]


def test_library_bars_are_off_in_logs(tmp_path):
    """transformers draws its own "Loading weights" bar with carriage returns; off a terminal, bench switches it
    off before the library is imported (the control without the switch shows the bar, so the check can fail)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=32)).save_pretrained(tmp_path)
    load = f"from transformers import AutoModelForCausalLM; AutoModelForCausalLM.from_pretrained({str(tmp_path)!r})"
    env = {k: v for k, v in os.environ.items() if k not in P.LIBRARY_BAR_SWITCHES}
    runs = {}
    for quiet in (False, True):
        prefix = "from bench.utils.progress import quiet_library_bars; quiet_library_bars(); " if quiet else ""
        res = subprocess.run(
            [sys.executable, "-c", prefix + load], capture_output=True, env=env, cwd=REPO, timeout=300
        )  # bytes: text mode would turn the carriage returns into newlines
        assert res.returncode == 0, res.stderr[-2000:]
        runs[quiet] = res.stderr.decode("utf-8", "replace")
    assert "\r" in runs[False] and "Loading weights" in runs[False]
    assert "\r" not in runs[True] and "Loading weights" not in runs[True]
