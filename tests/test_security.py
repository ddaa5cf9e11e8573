"""Secrets and untrusted files.

* The Perspective API key comes from the environment only and never reaches an output file, a sidecar, the
  score cache or a log line (transport mocked: no network).
* A malicious pickle (its `__reduce__` writes a marker file) planted where a checkpoint / resume state is
  expected is refused, and the marker is never written. Each test first shows the pickle IS live (an unsafe
  load writes the marker), so a refusal is a real refusal.
"""

from __future__ import annotations

import json
import logging
import pathlib
from pathlib import Path

import pytest
import torch

from bench.cli import main as bench_main
from bench.errors import BenchError
from helpers_reliability import TINY_GPT2, make_reward_folder, require_command, write_train_split

FAKE_KEY = "AIzaFAKE-perspective-key-7f3c9e1d2b"


# ------------------------------------------------------------------------------------------ API key
class _Resp:
    def __init__(self, status: int, body: dict):
        self.status_code, self._body = status, body

    def json(self):
        return self._body


class _FakeSession:
    """Stands in for requests.Session: answers Perspective requests offline, records what was sent."""

    instances: list[_FakeSession] = []

    def __init__(self, *a, **k):
        self.sent: list[tuple[str, dict]] = []
        _FakeSession.instances.append(self)

    def post(self, url, params=None, json=None, timeout=None, **kw):
        self.sent.append((url, dict(params or {})))
        text = json["comment"]["text"]
        if "boom" in text:  # a transport error whose message carries the full URL with the key, as requests does
            raise ConnectionError(f"HTTPSConnectionPool: Max retries exceeded with url: {url}?key={params['key']}")
        if "quota" in text:
            return _Resp(429, {"error": {"message": f"quota exceeded for key {params['key']}"}})
        return _Resp(200, {"attributeScores": {"TOXICITY": {"summaryScore": {"value": 0.1 * len(text) % 1}}}})

    def close(self):
        pass


def test_perspective_key_never_written_or_logged(tmp_path, monkeypatch, caplog, capsys):
    require_command("score")
    import requests

    import bench.metrics.perspective as persp

    monkeypatch.setenv("PERSPECTIVE_API_KEY", FAKE_KEY)
    monkeypatch.setattr(requests, "Session", _FakeSession)

    class FastPerspective(persp.PerspectiveScorer):  # no real rate-limit / back-off waits in a test
        def __init__(self):
            super().__init__(qps=0, max_retries=2, backoff_s=0.0, sleep=lambda s: None)

    monkeypatch.setattr(persp, "PerspectiveScorer", FastPerspective)
    _FakeSession.instances.clear()
    gens = tmp_path / "gen.jsonl"
    gens.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "prompt": "Hi", "continuations": c}) + "\n"
            for i, c in enumerate([[" fine", " boom"], [" quota", " ok then"]])
        )
    )
    Path(f"{gens}.meta.json").write_text(
        json.dumps({"method": "plain", "beta": 0, "top_k": 5, "task": "detox", "base": TINY_GPT2})
    )
    out = tmp_path / "out"
    caplog.set_level(logging.DEBUG)
    rc = bench_main(
        [
            "-v",
            "score",
            "--generations",
            str(gens),
            "--metrics",
            "toxicity,diversity",
            "--toxicity-scorer",
            "perspective",
            "--cache",
            str(out / "cache.sqlite"),
            "--out-scores",
            str(out / "scores.jsonl"),
            "--out-summary",
            str(out / "summary.csv"),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    # the key was really used (so the scan below is meaningful) ...
    sent = [p for s in _FakeSession.instances for _, p in s.sent]
    assert sent and all(p.get("key") == FAKE_KEY for p in sent)
    assert all(FAKE_KEY not in url for s in _FakeSession.instances for url, _ in s.sent)
    # ... failures were NaN (null), not 0
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert [r["toxicity"] is None for r in rows] == [False, True, True, False]
    # ... and it is nowhere in what the run left behind
    captured = capsys.readouterr()
    logs = caplog.text + captured.out + captured.err
    assert FAKE_KEY not in logs
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "summary.csv" for p in files) and any(p.name == "cache.sqlite" for p in files)
    leaked = [str(p) for p in files if FAKE_KEY.encode() in p.read_bytes()]
    assert not leaked, f"API key written to {leaked}"


def test_perspective_key_has_no_flag_or_config_entry():
    """Only the environment: no CLI flag and no pipeline config key can carry it."""
    from bench.cli import build_parser

    parser = build_parser(every_command=True)
    helps = []
    for action in parser._subparsers._group_actions[0].choices.values():
        helps += [opt for a in action._actions for opt in a.option_strings]
    assert not [o for o in helps if "key" in o.lower() and "api" in o.lower()], helps
    import inspect

    from bench.metrics.perspective import PerspectiveScorer

    assert not [p for p in inspect.signature(PerspectiveScorer).parameters if "key" in p.lower()]


# ------------------------------------------------------------------------------------------ malicious pickles
class _Evil:
    """Unpickling this calls Path.write_text(marker, 'pwned'): arbitrary code execution, harmlessly."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "pwned"))


def _plant(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": _Evil(marker), "weight": torch.zeros(2)}, path)
    return path


def _assert_live(path: Path, tmp_path: Path) -> None:
    """Control: an unsafe load of a copy of the same bytes does run the payload."""
    probe = tmp_path / "control_marker"
    copy = tmp_path / "control.pt"
    torch.save({"state": _Evil(probe)}, copy)
    torch.load(copy, weights_only=False)
    assert probe.read_text() == "pwned", "the planted pickle is not live; the test would prove nothing"


def test_pickle_instead_of_reward_weights_is_refused(tmp_path):
    from bench.rewards.registry import load_reward_model

    marker = tmp_path / "marker"
    rm = make_reward_folder(tmp_path / "rad")
    (rm / "model.safetensors").unlink()
    _plant(rm / "model.safetensors", marker)  # a pickle under the safetensors name
    _plant(rm / "pytorch_model.bin", marker)  # and under the name transformers would try
    _assert_live(rm / "model.safetensors", tmp_path)
    with pytest.raises(BenchError) as err:
        load_reward_model(rm)
    assert "model.safetensors" in str(err.value)
    assert not marker.exists(), "a planted pickle was executed while loading a reward model"


def test_pickle_in_training_resume_state_is_refused(tmp_path):
    """`<out>.ckpt/step-*.pt` (optimizer / RNG state) replaced by a malicious pickle: `bench train` must not run it."""
    require_command("train")
    train = write_train_split(tmp_path / "train.jsonl", 16)
    heldout = write_train_split(tmp_path / "held.jsonl", 4, seed=1)
    out = tmp_path / "rm"
    args = [
        "train",
        "--parametrization",
        "rad",
        "--backbone",
        TINY_GPT2,
        "--num-layers",
        "1",
        "--train",
        str(train),
        "--heldout",
        str(heldout),
        "--out",
        str(out),
        "--steps",
        "4",
        "--batch-size",
        "2",
        "--max-length",
        "8",
        "--checkpoint-every",
        "2",
        "--eval-every",
        "4",
        "--device",
        "cpu",
    ]
    # a real checkpoint folder to tamper with: run 2 steps' worth, then pretend the run was killed
    assert bench_main(args[: args.index("--steps") + 1] + ["2"] + args[args.index("--steps") + 2 :]) == 0
    import shutil

    ckpt = Path(f"{out}.ckpt")
    if not ckpt.exists():  # a finished run cleans its checkpoints: build the resume state by hand
        ckpt.mkdir()
        (ckpt / "latest.json").write_text(
            json.dumps({"step": 2, "weights": "step-00000002.safetensors", "state": "step-00000002.pt"})
        )
        shutil.copy(out / "model.safetensors", ckpt / "step-00000002.safetensors")
    shutil.rmtree(out)
    meta = json.loads((ckpt / "latest.json").read_text())
    marker = tmp_path / "marker"
    _plant(ckpt / meta["state"], marker)
    _assert_live(ckpt / meta["state"], tmp_path)
    try:
        rc = bench_main(args)
    except Exception as exc:  # noqa: BLE001 - refused loudly is acceptable; executed is not
        rc = f"raised {type(exc).__name__}"
    assert not marker.exists(), "a planted pickle in the resume state was executed"
    assert rc != 0, "training resumed from a checkpoint it could not have read safely"


def test_pickle_as_detoxify_checkpoint_is_refused(tmp_path):
    require_command("score")
    from bench.metrics.registry import build_scorer

    marker = tmp_path / "marker"
    ckpt = _plant(tmp_path / "toxic.ckpt", marker)
    _assert_live(ckpt, tmp_path)
    with pytest.raises(BenchError) as err:
        build_scorer(f"detoxify:{ckpt}")
    assert str(ckpt) in str(err.value)
    assert not marker.exists(), "a planted pickle was executed while loading a Detoxify checkpoint"


def test_pickle_in_base_model_folder_is_refused(tmp_path):
    """A model folder (config.json + pytorch_model.bin pickle) given as --base: never unpickled."""
    from transformers import GPT2Config

    from bench.models.loading import load_causal_lm

    folder = tmp_path / "model"
    folder.mkdir()
    GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=50257).save_pretrained(folder)
    marker = tmp_path / "marker"
    _plant(folder / "pytorch_model.bin", marker)
    _assert_live(folder / "pytorch_model.bin", tmp_path)
    with pytest.raises(Exception) as err:
        load_causal_lm(str(folder))
    assert not marker.exists(), f"a planted pickle was executed while loading a base model folder ({err.value})"
