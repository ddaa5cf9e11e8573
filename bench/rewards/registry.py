"""Select a reward parametrization by name; save and load reward-model folders safely.

Weights are read with safetensors only (never a pickle), and the folder's parametrization is checked
against what the caller expects, so a `rad` checkpoint cannot be loaded as `arm` by mistake.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
from pathlib import Path


from bench.errors import ModelError
from bench.rewards.base import CONFIG_NAME, WEIGHTS_NAME, RewardConfig, RewardModel
from bench.utils.io import set_output_mode, staging_dir

log = logging.getLogger(__name__)

# name -> "module:Class"
PARAMETRIZATIONS: dict[str, str] = {
    "rad": "bench.rewards.rad:RADRewardModel",
    "arm": "bench.rewards.arm:ARMRewardModel",
    "arm-baseline": "bench.rewards.arm:ARMRewardModel",
    "arm-mlp": "bench.rewards.arm_mlp:ARMMLPRewardModel",
    "arm-distill": "bench.rewards.arm:ARMRewardModel",  # an ARM student (baseline on), trained by distillation
}


def reward_class(name: str) -> type[RewardModel]:
    if name not in PARAMETRIZATIONS:
        raise ModelError(f"unknown reward parametrization '{name}'; expected one of {sorted(PARAMETRIZATIONS)}")
    module, cls = PARAMETRIZATIONS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_reward_model(config: RewardConfig, device: str | None = "cpu") -> RewardModel:
    """A fresh (untrained head) reward model of `config.parametrization` on `device`."""
    from bench.models.loading import resolve_device

    model = reward_class(config.parametrization)(config)
    return model.to(resolve_device(device))


def save_reward_model(model: RewardModel, folder: str | os.PathLike) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_dir(folder)
    try:
        (tmp / CONFIG_NAME).write_text(json.dumps(model.config.to_dict(), indent=2, sort_keys=True) + "\n")
        tensors = {k: v.to("cpu") for k, v in model.trainable_state_dict().items()}
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"parametrization": model.config.parametrization})
        set_output_mode(tmp / WEIGHTS_NAME)  # safetensors writes 0600; every other output is 0644 (umask)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_reward_config(folder: str | os.PathLike) -> RewardConfig:
    folder = Path(folder)
    cfg_path = folder / CONFIG_NAME
    if not cfg_path.exists():
        raise ModelError(f"{folder}: not a reward-model folder (no {CONFIG_NAME})")
    try:
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{cfg_path}: corrupt reward config ({exc})") from exc
    return RewardConfig.from_dict(data, source=str(cfg_path))


def load_reward_model(folder: str | os.PathLike, device: str | None = "cpu",
                      expected_parametrization: str | None = None, **overrides) -> RewardModel:
    """Rebuild a reward model from its folder alone; refuses another parametrization or corrupt weights."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    config = read_reward_config(folder)
    for key, value in overrides.items():
        setattr(config, key, value)
    if expected_parametrization and config.parametrization != expected_parametrization:
        raise ModelError(
            f"{folder}: checkpoint is a '{config.parametrization}' reward model, expected '{expected_parametrization}'"
        )
    weights = folder / WEIGHTS_NAME
    if not weights.exists():
        raise ModelError(f"{folder}: no {WEIGHTS_NAME} (only safetensors checkpoints are loaded, never pickles)")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{weights}: corrupt or unreadable safetensors file ({exc})") from exc
    model = build_reward_model(config, device="cpu")
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # same names, other shapes: the config (backbone, attributes...) changed
        shapes = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        raise ModelError(f"{weights}: tensor shapes do not match {folder / CONFIG_NAME} "
                         f"({'; '.join(shapes[:2]) or exc}); expected the weights saved with this config") from exc
    expected_keys = set(model.trainable_state_dict())
    missing = sorted(set(missing) & expected_keys)
    if missing or unexpected:
        raise ModelError(f"{weights}: does not match a '{config.parametrization}' model "
                         f"(missing {missing[:5]}, unexpected {sorted(unexpected)[:5]})")
    from bench.models.loading import resolve_device

    model.eval()
    model.source = str(folder)  # named in errors about this model's outputs (e.g. a non-finite reward)
    return model.to(resolve_device(device))
