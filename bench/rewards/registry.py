"""The reward parametrizations, declared once; save and load reward-model folders safely.

`PARAMETRIZATIONS` holds one `Parametrization` entry per name. Everything that needs to know the set of
parametrizations derives it from here: the `bench train --parametrization` choices, the config schema's
enums (`bench.config.load_schema`), table labels (`display_name`), the latency harness's methods
(`latency_methods`) and the Snakemake rule lists (`label_trained` / `distilled`, the teacher). Adding a
parametrization is one entry here plus one module with its `RewardModel` subclass (docs/architecture.md).

Importing this module does not import torch: the model class is imported only when a model is built.
Weights are read with safetensors only (never a pickle), and the folder's parametrization is checked
against what the caller expects, so a `rad` checkpoint cannot be loaded as `arm` by mistake.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import ModelError

if TYPE_CHECKING:
    from bench.rewards.base import RewardConfig, RewardModel

log = logging.getLogger(__name__)

LABELS = "labels"  # trained on labelled text (bench.training.trainer with a label loss)
DISTILLATION = "distillation"  # trained to reproduce a trained teacher's rewards (bench.training.distill)
TRAINING_MODES = (LABELS, DISTILLATION)


@dataclass(frozen=True)
class Parametrization:
    """What the rest of the code may ask about a parametrization by name."""

    name: str  # the CLI / config / folder name
    cls: str | type  # "module:Class" (imported lazily) or the RewardModel subclass itself
    display_name: str  # label in tables and figures
    training: str = LABELS  # LABELS | DISTILLATION
    teacher: str | None = None  # DISTILLATION: the parametrization whose trained model is the teacher
    has_baseline: bool = False  # adds the prefix baseline w^T h(x) (RewardConfig.baseline follows from this)
    mlp_rank: bool = False  # takes a bottleneck rank (RewardConfig.mlp_rank, `bench train --mlp-rank`)
    rank: int | None = None  # fixed rank of the reward projection (the arm-lowrank-r{r} family; None: not set)
    latency_variants: tuple[str, ...] = ()  # extra latency methods timing this model another way ("rad-loop")
    in_default: bool = True  # trained when a config does not list `training.parametrizations` (sweep-only: False)

    def __post_init__(self) -> None:
        if self.training not in TRAINING_MODES:
            raise ModelError(
                f"parametrization '{self.name}': training must be one of {TRAINING_MODES}, got {self.training!r}"
            )
        if (self.training == DISTILLATION) != (self.teacher is not None):
            raise ModelError(
                f"parametrization '{self.name}': a teacher is named exactly when training is '{DISTILLATION}'"
            )
        if self.rank is not None and (isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1):
            raise ModelError(f"parametrization '{self.name}': rank must be an integer >= 1, got {self.rank!r}")

    def model_class(self) -> type[RewardModel]:
        if isinstance(self.cls, type):
            return self.cls
        module, _, attr = self.cls.partition(":")
        return getattr(importlib.import_module(module), attr)


PARAMETRIZATIONS: dict[str, Parametrization] = {}


def register(spec: Parametrization) -> Parametrization:
    """Add a parametrization (refuses a name already taken, or a teacher that is not registered)."""
    if spec.name in PARAMETRIZATIONS:
        raise ModelError(f"parametrization '{spec.name}' is already registered")
    if spec.teacher is not None and spec.teacher not in PARAMETRIZATIONS:
        raise ModelError(f"parametrization '{spec.name}': teacher '{spec.teacher}' is not registered")
    PARAMETRIZATIONS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    PARAMETRIZATIONS.pop(name, None)


register(Parametrization("rad", "bench.rewards.rad:RADRewardModel", "RAD", latency_variants=("rad-loop",)))
register(Parametrization("arm", "bench.rewards.arm:ARMRewardModel", "ARM"))
register(Parametrization("arm-baseline", "bench.rewards.arm:ARMRewardModel", "ARM + baseline", has_baseline=True))
register(
    Parametrization("arm-mlp", "bench.rewards.arm_mlp:ARMMLPRewardModel", "ARM-MLP", has_baseline=True, mlp_rank=True)
)
register(
    Parametrization(
        "arm-distill",
        "bench.rewards.arm:ARMRewardModel",
        "ARM (distilled)",
        training=DISTILLATION,
        teacher="rad",
        has_baseline=True,
    )
)
# Issue 30's rank sweep (config/rank_sweep.yaml): ARM + baseline through a rank-r bottleneck, one name per r
# (the rank is part of the name, so every r flows through the pipeline unchanged; add an r here to sweep it),
# and the free token head (GenARM-style). Full rank is arm-baseline itself.
LOWRANK_RANKS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
for _r in LOWRANK_RANKS:
    register(
        Parametrization(
            f"arm-lowrank-r{_r}",
            "bench.rewards.arm_lowrank:ARMLowRankRewardModel",
            f"ARM + baseline, rank {_r}",
            has_baseline=True,
            rank=_r,
            in_default=False,
        )
    )
register(
    Parametrization(
        "free-head",
        "bench.rewards.free_head:FreeHeadRewardModel",
        "Free head (GenARM-style)",
        has_baseline=True,
        in_default=False,
    )
)


def get(name: str) -> Parametrization:
    if name not in PARAMETRIZATIONS:
        raise ModelError(f"unknown reward parametrization '{name}'; expected one of {names()}")
    return PARAMETRIZATIONS[name]


def names() -> list[str]:
    """Registered names, in registration order (the order of tables and figures)."""
    return list(PARAMETRIZATIONS)


def default_names() -> list[str]:
    """What a config that lists no `training.parametrizations` trains: the papers' five, not the sweep's family."""
    return [n for n, s in PARAMETRIZATIONS.items() if s.in_default]


def names_of_class(cls: type) -> list[str]:
    """The parametrizations whose folders load as `cls` (its `from_pretrained` accepts exactly these)."""
    return [n for n, s in PARAMETRIZATIONS.items() if s.model_class() is cls]


def label_trained() -> list[str]:
    return [n for n, s in PARAMETRIZATIONS.items() if s.training == LABELS]


def distilled() -> list[str]:
    return [n for n, s in PARAMETRIZATIONS.items() if s.training == DISTILLATION]


def display_name(name: str) -> str:
    """A parametrization's table label; any other method name (e.g. "plain") is returned unchanged."""
    spec = PARAMETRIZATIONS.get(name)
    return spec.display_name if spec else name


def latency_methods() -> dict[str, str]:
    """Latency method -> the parametrization it times (each name, plus its latency variants)."""
    out: dict[str, str] = {}
    for name, spec in PARAMETRIZATIONS.items():
        out[name] = name
        out.update({v: name for v in spec.latency_variants})
    return out


def reward_class(name: str) -> type[RewardModel]:
    return get(name).model_class()


def build_reward_model(config: RewardConfig, device: str | None = "cpu") -> RewardModel:
    """A fresh (untrained head) reward model of `config.parametrization` on `device` (config is copied)."""
    from bench.models.loading import resolve_device

    model = reward_class(config.parametrization)(config.copy())
    return model.to(resolve_device(device))


def save_reward_model(model: RewardModel, folder: str | os.PathLike) -> None:
    from safetensors.torch import save_file

    from bench.rewards.base import CONFIG_NAME, WEIGHTS_NAME
    from bench.utils.io import set_output_mode, sha256_file, staging_dir

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_dir(folder)
    try:
        tensors = {k: v.to("cpu") for k, v in model.trainable_state_dict().items()}
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"parametrization": model.config.parametrization})
        set_output_mode(tmp / WEIGHTS_NAME)  # safetensors writes 0600; every other output is 0644 (umask)
        # the weights' content digest, verified by load_reward_model (flipped bytes that still parse are caught)
        cfg = model.config.to_dict() | {WEIGHTS_DIGEST_KEY: sha256_file(tmp / WEIGHTS_NAME)}
        (tmp / CONFIG_NAME).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        from safetensors import SafetensorError

        if isinstance(exc, (OSError, SafetensorError)):  # disk full, file-size limit: name the folder
            from bench.errors import DataError

            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise DataError(f"{folder}: cannot write the reward model ({why}); nothing was written") from exc
        raise


WEIGHTS_DIGEST_KEY = "weights_sha256"  # in reward_config.json: sha256 of model.safetensors, written with it


def read_reward_config(folder: str | os.PathLike, digest: dict | None = None) -> RewardConfig:
    """The folder's RewardConfig; `digest` (a dict), when given, receives the recorded weights digest."""
    from bench.rewards.base import CONFIG_NAME, RewardConfig

    folder = Path(folder)
    cfg_path = folder / CONFIG_NAME
    if not cfg_path.exists():
        raise ModelError(f"{folder}: not a reward-model folder (no {CONFIG_NAME})")
    try:
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{cfg_path}: corrupt reward config ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{cfg_path}: corrupt reward config (expected a JSON object)")
    recorded = data.pop(WEIGHTS_DIGEST_KEY, None)
    if digest is not None:
        digest[WEIGHTS_DIGEST_KEY] = recorded
    return RewardConfig.from_dict(data, source=str(cfg_path))


def load_reward_model(
    folder: str | os.PathLike,
    device: str | None = "cpu",
    expected_parametrization: str | list[str] | tuple[str, ...] | None = None,
    **overrides,
) -> RewardModel:
    """Rebuild a reward model from its folder alone; refuses another parametrization or corrupt weights.

    `expected_parametrization`: one name or several accepted names (a class's `from_pretrained` passes the
    names registered for it)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from bench.rewards.base import CONFIG_NAME, WEIGHTS_NAME

    folder = Path(folder)
    recorded: dict = {}
    config = read_reward_config(folder, digest=recorded)
    for key, value in overrides.items():
        setattr(config, key, value)
    if expected_parametrization:
        accepted = (
            [expected_parametrization] if isinstance(expected_parametrization, str) else list(expected_parametrization)
        )
        if config.parametrization not in accepted:
            want = f"'{accepted[0]}'" if len(accepted) == 1 else f"one of {accepted}"
            raise ModelError(f"{folder}: checkpoint is a '{config.parametrization}' reward model, expected {want}")
    get(config.parametrization)  # a clear error for a folder of an unregistered parametrization
    weights = folder / WEIGHTS_NAME
    if not weights.exists():
        raise ModelError(f"{folder}: no {WEIGHTS_NAME} (only safetensors checkpoints are loaded, never pickles)")
    from bench.utils.io import verify_digest

    verify_digest(weights, recorded[WEIGHTS_DIGEST_KEY], folder / CONFIG_NAME, error=ModelError)
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{weights}: corrupt or unreadable safetensors file ({exc})") from exc
    model = build_reward_model(config, device="cpu")
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # same names, other shapes: the config (backbone, attributes...) changed
        shapes = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        raise ModelError(
            f"{weights}: tensor shapes do not match {folder / CONFIG_NAME} "
            f"({'; '.join(shapes[:2]) or exc}); expected the weights saved with this config"
        ) from exc
    expected_keys = set(model.trainable_state_dict())
    missing = sorted(set(missing) & expected_keys)
    if missing or unexpected:
        raise ModelError(
            f"{weights}: does not match a '{config.parametrization}' model "
            f"(missing {missing[:5]}, unexpected {sorted(unexpected)[:5]})"
        )
    from bench.models.loading import resolve_device

    model.eval()
    model.source = str(folder)  # named in errors about this model's outputs (e.g. a non-finite reward)
    return model.to(resolve_device(device))
