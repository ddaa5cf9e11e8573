"""The pipeline config (config/*.yaml): JSON-schema validation, defaults, and typed views.

The Snakefile and any `bench` code that needs the pipeline config go through `load_config` /
`validate_config`, so a wrong key or type fails at once, naming the key, instead of half-way through a run.
The schema lives in `workflow/schemas/config.schema.yaml` (one source of truth for Snakemake and Python).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_TOP_K = [20]
PARAMETRIZATIONS = ("rad", "arm", "arm-baseline", "arm-mlp", "arm-distill")


def load_schema(path: str | os.PathLike = SCHEMA_PATH) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config schema not found (run from a checkout of the repository)")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if ref and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        return node
    return schema


def _fill_defaults(obj: Any, schema: dict, root: dict) -> None:
    """Set schema defaults of missing keys, recursively (jsonschema itself never fills defaults)."""
    schema = _resolve(schema, root)
    if isinstance(obj, dict):
        for key, sub in schema.get("properties", {}).items():
            sub = _resolve(sub, root)
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                _fill_defaults(obj[key], sub, root)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, val in obj.items():
                if key not in schema.get("properties", {}):
                    _fill_defaults(val, extra, root)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            _fill_defaults(item, schema["items"], root)


def _non_finite(obj: Any, where: str = "") -> tuple[str, float] | None:
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "<top level>", obj
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        found = _non_finite(v, f"{where}.{k}" if where else str(k))
        if found:
            return found
    return None


def validate_config(config: dict, schema: dict | None = None, source: str = "config") -> dict:
    """Validate `config` in place (defaults filled) and return it; raise ConfigError naming the key."""
    import jsonschema

    if not isinstance(config, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(config).__name__}")
    schema = schema or load_schema()
    bad = _non_finite(config)
    if bad:  # YAML's .inf / .nan are numbers to JSON schema: refuse them here, naming the key
        raise ConfigError(f"{source}: key '{bad[0]}' = {bad[1]!r}: expected a finite number")
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for err in errors[:10]:
            key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
            lines.append(f"key '{key}': {err.message}")
        raise ConfigError(f"{source}: invalid config:\n  " + "\n  ".join(lines))
    _fill_defaults(config, schema, schema)
    for name in ("toxicity", "sentiment"):
        task = config.get("tasks", {}).get(name)
        if task is not None:
            task.setdefault("top_k", list(DEFAULT_TOP_K))
            if task["steer_attribute"] not in task["attributes"]:
                raise ConfigError(
                    f"{source}: key 'tasks.{name}.steer_attribute': {task['steer_attribute']!r} is not one of "
                    f"tasks.{name}.attributes {task['attributes']}"
                )
    config.setdefault("work_dir", f"runs/{config['name']}")
    return config


def load_config(path: str | os.PathLike) -> "PipelineConfig":
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    return PipelineConfig.from_dict(validate_config(raw, source=str(path)))


@dataclass(frozen=True)
class Resources:
    threads: int = 1
    mem_mb: int = 2000
    runtime: int = 60
    gpu: int = 0


@dataclass(frozen=True)
class TrainSource:
    dataset: str
    source: str
    n_train: int
    n_heldout: int
    balance: bool = False


@dataclass(frozen=True)
class PromptSource:
    dataset: str
    source: str
    n: int
    n_by_type: dict[str, int] = field(default_factory=dict)
    allow_fewer: bool = False
    max_toxicity: float | None = None


@dataclass(frozen=True)
class TaskConfig:
    name: str
    enabled: bool
    attributes: list[str]
    steer_attribute: str
    train: list[TrainSource]
    prompts: PromptSource
    betas: list[float]
    top_k: list[int]
    direction: str = "away"
    targets: dict[str, list[str]] = field(default_factory=dict)


TRAIN_RUN_KEYS = ("max_steps", "eval_every", "patience", "min_delta", "batch_size", "lr", "extra_args")


@dataclass(frozen=True)
class TrainingConfig:
    parametrizations: list[str]
    max_steps: int
    eval_every: int
    patience: int
    min_delta: float
    batch_size: int
    lr: float
    max_length: int
    mlp_rank: int
    extra_args: str
    overrides: dict[str, dict[str, Any]]

    def for_parametrization(self, name: str) -> dict[str, Any]:
        """Budget / early stopping / batch_size / lr / extra_args of one parametrization, overrides applied."""
        out = {k: getattr(self, k) for k in TRAIN_RUN_KEYS}
        out.update(self.overrides.get(name, {}))
        return out


@dataclass(frozen=True)
class GenerationConfig:
    plain: bool
    num_samples: int
    max_new_tokens: int
    batch_size: int
    extra_args: str


@dataclass(frozen=True)
class ScoringConfig:
    toxicity_scorer: str
    sentiment_scorer: str
    fluency_model: str | None
    sentiment_train: str
    sentiment_dev: str
    sentiment_max_train: int | None
    extra_args: str


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    work_dir: str
    results_dir: str
    figures_dir: str
    data_dir: str | None
    seed: int
    base: str
    reward_backbone: str
    reward_num_layers: int | None
    convert: list[str]
    tasks: dict[str, TaskConfig]
    training: TrainingConfig
    generation: GenerationConfig
    scoring: ScoringConfig
    resources: dict[str, Resources]
    raw: dict[str, Any]

    @classmethod
    def from_dict(cls, cfg: dict) -> "PipelineConfig":
        """Build from a config that `validate_config` has already checked and filled."""
        tasks = {}
        for name, t in cfg.get("tasks", {}).items():
            tasks[name] = TaskConfig(
                name=name,
                enabled=t["enabled"],
                attributes=list(t["attributes"]),
                steer_attribute=t["steer_attribute"],
                train=[TrainSource(**s) for s in t["train"]],
                prompts=PromptSource(**t["prompts"]),
                betas=[float(b) for b in t["betas"]],
                top_k=[int(k) for k in t["top_k"]],
                direction=t.get("direction", "away"),
                targets={k: list(v) for k, v in t.get("targets", {}).items()},
            )
        tr, gen, sc = cfg.get("training", {}), cfg.get("generation", {}), cfg.get("scoring", {})
        default_res = cfg.get("resources", {}).get("default", {})
        resources = {k: Resources(**{**default_res, **v}) for k, v in cfg.get("resources", {}).items()}
        resources.setdefault("default", Resources(**default_res))
        return cls(
            name=cfg["name"],
            work_dir=cfg["work_dir"],
            results_dir=cfg["results_dir"],
            figures_dir=cfg["figures_dir"],
            data_dir=cfg.get("data_dir"),
            seed=cfg["seed"],
            base=cfg["models"]["base"],
            reward_backbone=cfg["models"]["reward_backbone"],
            reward_num_layers=cfg["models"].get("reward_num_layers"),
            convert=list(cfg["models"].get("convert", [])),
            tasks=tasks,
            training=TrainingConfig(**tr),
            generation=GenerationConfig(**gen),
            scoring=ScoringConfig(
                toxicity_scorer=sc["toxicity_scorer"],
                sentiment_scorer=sc["sentiment_scorer"],
                fluency_model=sc.get("fluency_model"),
                sentiment_train=sc["sentiment_classifier"]["train"],
                sentiment_dev=sc["sentiment_classifier"]["dev"],
                sentiment_max_train=sc["sentiment_classifier"].get("max_train"),
                extra_args=sc["extra_args"],
            ),
            resources=resources,
            raw=cfg,
        )

    def resources_for(self, rule: str) -> Resources:
        """A rule's resources: its own keys, then resources.default's, then the dataclass defaults."""
        return self.resources.get(rule) or self.resources["default"]

    @property
    def enabled_tasks(self) -> list[TaskConfig]:
        return [t for t in self.tasks.values() if t.enabled]
