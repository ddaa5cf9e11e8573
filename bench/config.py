"""The pipeline config (config/*.yaml): one JSON schema, validated once, defaults filled.

The Snakefile calls `validate_config` once on its merged config; `bench` code and tests use `load_config`.
A wrong key or type fails at once, naming the key, instead of half-way through a run. The schema lives in
`workflow/schemas/config.schema.yaml`; its parametrization and latency-method enums are filled in here from
`bench.rewards.registry`, so the names are declared once.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from bench.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_TOP_K = [20]


def load_schema(path: str | os.PathLike = SCHEMA_PATH) -> dict:
    """The schema, with `$defs.parametrization` / `$defs.latency_method` enumerating the registry's names."""
    from bench.rewards.registry import latency_methods, names

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config schema not found (run from a checkout of the repository)")
    schema = yaml.safe_load(path.read_text(encoding="utf-8"))
    defs = schema.get("$defs", {})
    if "parametrization" in defs:
        defs["parametrization"]["enum"] = names()
        schema["properties"]["training"]["properties"]["parametrizations"]["default"] = names()
    if "latency_method" in defs:
        defs["latency_method"]["enum"] = ["plain", *latency_methods()]
    return schema


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


def read_yaml(path: str | os.PathLike) -> Any:
    """One YAML file; a syntax error becomes one line naming the file, line and column (1-based)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found" if not path.exists() else f"{path}: not a file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = " ".join(str(x) for x in (getattr(exc, "problem", None), getattr(exc, "context", None)) if x)
        raise ConfigError(f"{path}{where}: not valid YAML: {what or str(exc).splitlines()[0]}") from exc


def merge_config(base: dict, over: dict) -> dict:
    """Update `base` with `over` the way `snakemake --configfile A B` merges: mappings recursively, lists replace."""
    for k, v in over.items():
        base[k] = merge_config(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else copy.deepcopy(v)
    return base


def load_config(*paths: str | os.PathLike) -> dict:
    """Read, merge (in order), validate and fill config files: the same dict the Snakefile works with."""
    if not paths:
        raise ConfigError("no config file given")
    cfg: dict = {}
    for path in paths:
        raw = read_yaml(path)
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
        merge_config(cfg, raw)
    return validate_config(cfg, source=" + ".join(map(str, paths)))


TRAINING_KEYS = ("max_steps", "eval_every", "patience", "min_delta", "batch_size", "lr", "extra_args")


def training_settings(config: dict, task: str, param: str) -> dict:
    """The training flags of one (task, parametrization), least specific first: `training`, its
    `overrides[param]`, the task's `training`, the task's `training.overrides[param]`."""
    t = config["training"]
    task_t = config["tasks"][task].get("training", {})
    layers = (t, t.get("overrides", {}).get(param, {}), task_t, task_t.get("overrides", {}).get(param, {}))
    return {k: v for layer in layers for k, v in layer.items() if k in TRAINING_KEYS}


BUILTIN_RESOURCES = {"threads": 1, "mem_mb": 2000, "runtime": 60, "gpu": 0}


def resource(config: dict, rule: str, key: str) -> int:
    """A rule's resource: resources.<rule>.<key>, else resources.default.<key>, else the built-in default."""
    r = config.get("resources", {})
    return r.get(rule, {}).get(key, r.get("default", {}).get(key, BUILTIN_RESOURCES[key]))
