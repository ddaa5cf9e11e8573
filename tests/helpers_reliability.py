"""Shared tools of the reliability tests: run `python -m bench` as a subprocess, kill it mid-run,
build tiny reward-model folders, and find what a failed or killed step left behind."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.reporting.compare import comparable_table  # noqa: F401  (the tests' name for it)

REPO = Path(__file__).resolve().parents[1]
TINY_GPT2 = "random:tiny-gpt2?n_layer=2&n_embd=64&n_head=2&seed=0"


def bench_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """One thread per subprocess (the CPU is shared), the repo importable, no hub access attempted."""
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONPATH=str(REPO),
    )
    env.update(extra or {})
    return env


def bench_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench", *map(str, args)]


def run_bench(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, cwd: str | os.PathLike = REPO
) -> subprocess.CompletedProcess:
    return subprocess.run(
        bench_cmd(*args), cwd=cwd, env=bench_env(env), capture_output=True, text=True, timeout=timeout
    )


def command_available(name: str) -> bool:
    return (REPO / "bench" / "commands" / f"{name.replace('-', '_')}.py").exists()


def require_command(name: str) -> None:
    """A test of `bench <name>` fails (never skips) when the command is missing."""
    assert command_available(name), f"`bench {name}` missing (bench/commands/{name.replace('-', '_')}.py)"


def sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def temp_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Files that look half-written: atomic-write temporaries (`.<name>.*.tmp`), `*.tmp`, `*.partial*`."""
    folder = Path(folder)
    if not folder.exists():
        return []
    bad = []
    for p in folder.rglob("*"):
        name = p.name
        if name.endswith(".tmp") or ".partial" in name or (name.startswith(".") and ".tmp" in name):
            bad.append(p)
    return sorted(bad)


def run_until_killed(
    cmd: Sequence[str],
    kill_at: str,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    cwd: str | os.PathLike = REPO,
) -> subprocess.CompletedProcess:
    """Run `cmd` with BENCH_TEST_KILL_AT=`kill_at` (`<event>:<n>`, see bench.utils.testhooks): the command
    SIGKILLs itself right after its n-th durable progress point, so the kill lands at the same place on any
    machine, however fast. Asserts it really died there (exit -9), not finished or failed."""
    res = subprocess.run(
        list(cmd),
        cwd=cwd,
        env=bench_env({**(env or {}), "BENCH_TEST_KILL_AT": kill_at}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert res.returncode == -signal.SIGKILL, (
        f"expected the command to kill itself at {kill_at}, got exit {res.returncode}:\n{res.stderr[-3000:]}"
    )
    return res


def write_prompts(path: str | os.PathLike, n: int, prefix: str = "The weather today") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"p{i}", "prompt": f"{prefix} number {i} is", "source": "test"}) + "\n")
    return path


def write_train_split(path: str | os.PathLike, n: int, seed: int = 0) -> Path:
    """A learnable toy signal: texts containing ' bad' are labelled toxic."""
    import random

    rng = random.Random(seed)
    words = "the cat sat on a mat and looked at sun rain tree house good nice".split()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(n):
            text = " ".join(rng.choice(words) for _ in range(rng.randint(4, 10)))
            toxic = rng.random() < 0.5
            if toxic:
                text += " bad"
            fh.write(json.dumps({"text": text, "labels": {"toxicity": float(toxic)}}) + "\n")
    return path


def make_reward_folder(
    folder: str | os.PathLike,
    parametrization: str = "rad",
    backbone: str = TINY_GPT2,
    num_layers: int = 1,
    attributes: Sequence[str] = ("toxicity",),
    seed: int = 0,
) -> Path:
    """An untrained (seeded) reward-model folder in the standard format."""
    import torch

    from bench.rewards.base import RewardConfig
    from bench.rewards.registry import build_reward_model, save_reward_model

    cfg = RewardConfig(
        parametrization=parametrization, backbone=backbone, num_layers=num_layers, attributes=list(attributes)
    )  # the baseline follows from the name (registry)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_reward_model(cfg)
        with torch.no_grad():  # non-zero heads so that rewards actually change the decoding
            for name, p in model.named_parameters():
                if p.requires_grad and not name.startswith(("backbone.", "trunk.")):
                    p.normal_(0, 0.5)
    save_reward_model(model, folder)
    return Path(folder)
