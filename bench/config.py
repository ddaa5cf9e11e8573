"""The pipeline config (config/*.yaml): one JSON schema, validated once, defaults filled.

The Snakefile calls `validate_config` once on its merged config; `bench` code and tests use `load_config`.
A wrong key or type fails at once, naming the key, instead of half-way through a run. The schema lives in
`workflow/schemas/config.schema.yaml`; its parametrization and latency-method enums are filled in here from
`bench.rewards.registry`, so the names are declared once.
"""

from __future__ import annotations

import argparse
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
    from bench.rewards.registry import default_names, latency_methods, names

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config schema not found (run from a checkout of the repository)")
    schema = load_yaml_text(path.read_text(encoding="utf-8"))
    defs = schema.get("$defs", {})
    if "parametrization" in defs:
        defs["parametrization"]["enum"] = names()
        schema["properties"]["training"]["properties"]["parametrizations"]["default"] = default_names()
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


def validate_config(
    config: dict, schema: dict | None = None, source: str = "config", command_args: bool = True
) -> dict:
    """Validate `config` in place (defaults filled) and return it; raise ConfigError naming the key.

    `command_args=False` skips parsing the extra-arguments strings with their commands' parsers (which imports
    torch): for a process that re-reads a config its main process already checked, e.g. a Snakemake job."""
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
            hint = err.schema.get("errorMessage") if isinstance(err.schema, dict) else None  # the schema's own words
            lines.append(f"key '{key}': {err.instance!r}: {hint}" if hint else f"key '{key}': {err.message}")
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
    if command_args:
        check_command_args(config, source)
    check_scorer_specs(config, source)
    return config


def check_scorer_specs(config: dict, source: str = "config") -> None:
    """`scoring.toxicity_scorer` / `sentiment_scorer` name a scorer of their kind (the grammar of
    `bench.metrics.registry`): a typo, or a sentiment scorer given for toxicity, fails now, not in a score job."""
    from bench.metrics.registry import SENTIMENT_SPECS, TOXICITY_SPECS

    scoring = config.get("scoring", {})
    checks = [
        (key, scoring[key], specs)
        for key, specs in (("toxicity_scorer", TOXICITY_SPECS), ("sentiment_scorer", SENTIMENT_SPECS))
        if key in scoring
    ]
    checks += [
        (f"extra_toxicity_scorers[{i}]", v, TOXICITY_SPECS)
        for i, v in enumerate(scoring.get("extra_toxicity_scorers") or [])
    ]
    for key, value, specs in checks:
        kind, colon, arg = str(value).strip().partition(":")
        # "name" takes no argument, "name:<arg>" needs one (detoxify's defaults to 'original')
        ok = any(
            kind == name and (bool(arg) or name == "detoxify" if takes else not colon)
            for name, takes, _ in (p.partition(":") for p in specs)
        )
        if not ok:
            raise ConfigError(f"{source}: key 'scoring.{key}' = {value!r}: expected one of {', '.join(specs)}")


# data sets whose loader also reads a folder (the shipped mirrors: sst2/, sentiment_prompts-10k/); every other
# local source must be one file
FOLDER_SOURCES = frozenset({"sst2", "sentiment"})


def check_sources(config: dict, source: str = "config") -> None:
    """Resolve every data source the run will read, as the Snakefile will (same resolver and search roots):
    a path that does not exist, or a folder where the data set needs one file, fails now naming the key.
    Hub ids pass (they are checked when fetched). Not part of `validate_config`: it depends on the cwd."""
    from bench.data.sources import resolve_source
    from bench.errors import DataError

    items = []
    for name, task in config.get("tasks", {}).items():
        if not task.get("enabled", True):
            continue
        items += [(f"tasks.{name}.train[{i}].source", t["dataset"], t["source"]) for i, t in enumerate(task["train"])]
        items.append((f"tasks.{name}.prompts.source", task["prompts"]["dataset"], task["prompts"]["source"]))
    clf = config.get("scoring", {}).get("sentiment_classifier", {})
    if "sentiment" in config.get("tasks", {}) and config["tasks"]["sentiment"].get("enabled", True):
        items += [(f"scoring.sentiment_classifier.{k}", None, clf[k]) for k in ("train", "dev") if k in clf]
    for key, dataset, value in items:
        try:
            found = resolve_source(value, extra_root=config.get("data_dir"))
        except DataError as exc:
            raise ConfigError(f"{source}: key '{key}': {exc}") from None
        if found.kind == "local" and Path(found.value).is_dir() and dataset not in FOLDER_SOURCES:
            what = f"a {dataset} data file" if dataset else "a data file"
            raise ConfigError(f"{source}: key '{key}' = {value!r}: {found.value} is a folder; expected {what}")


# Flags a rule sets itself (inputs, outputs, the method): in extra args they would send the output elsewhere or
# mislabel it, so they are refused. dest names of the command's parser.
RULE_MANAGED = {
    "train": ("parametrization", "train", "heldout", "out", "teacher"),
    "generate": ("prompts", "out", "reward"),
    "score": ("generations", "out_scores", "out_summary", "cache"),
    "agreement": ("out",),
}


def command_arg_keys(config: dict) -> list[tuple[str, str, str]]:
    """(config key, bench command, value) of every string the Snakefile appends verbatim to a command."""
    out = []
    t = config.get("training", {})
    layers = [("training", t)] + [(f"training.overrides.{p}", o) for p, o in t.get("overrides", {}).items()]
    for name, task in config.get("tasks", {}).items():
        tt = task.get("training", {})
        layers += [(f"tasks.{name}.training", tt)]
        layers += [(f"tasks.{name}.training.overrides.{p}", o) for p, o in tt.get("overrides", {}).items()]
    out += [(f"{key}.extra_args", "train", layer["extra_args"]) for key, layer in layers if "extra_args" in layer]
    for section, command, field in (
        ("generation", "generate", "extra_args"),
        ("scoring", "score", "extra_args"),
        ("agreement", "agreement", "args"),
    ):
        if field in config.get(section, {}):
            out.append((f"{section}.{field}", command, config[section][field]))
    return out


class _ArgsError(Exception):
    pass


class _CheckingParser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting."""

    def error(self, message):
        raise _ArgsError(message)


def command_parser(command: str) -> argparse.ArgumentParser:
    """`bench <command>`'s own parser (from `bench.cli`), with no argument required: extra args are partial."""
    import importlib

    from bench.cli import COMMANDS

    parser = _CheckingParser(prog=f"bench {command}", add_help=False)
    importlib.import_module(COMMANDS[command][0]).add_arguments(parser)
    for action in parser._actions:
        action.required = False
    return parser


def check_command_args(config: dict, source: str = "config") -> None:
    """Parse every extra-arguments string with the parser of the command it is appended to, so an unknown flag,
    a bad value or a flag the rule sets itself fails now, naming the key, not in the first job hours later."""
    import shlex

    parsers: dict[str, argparse.ArgumentParser] = {}
    for key, command, value in command_arg_keys(config):
        if not value.strip():
            continue
        where = f"{source}: key '{key}' = {value!r}"
        try:
            tokens = shlex.split(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: cannot split into arguments ({exc})") from None
        parser = parsers.get(command) or parsers.setdefault(command, command_parser(command))
        try:
            ns, unknown = parser.parse_known_args(tokens)
        except _ArgsError as exc:
            raise ConfigError(f"{where}: bench {command} refuses it ({exc})") from None
        if unknown:
            raise ConfigError(
                f"{where}: bench {command} has no argument {' '.join(unknown)}; expected flags "
                f"of `bench {command} --help`"
            )
        managed = [d for d in RULE_MANAGED.get(command, ()) if getattr(ns, d, None) is not None]
        if managed:
            flags = ["--" + d.replace("_", "-") for d in managed]
            raise ConfigError(f"{where}: {', '.join(flags)} is set by the pipeline's rule itself; remove it")


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping key given twice (PyYAML keeps the last one silently, so a config
    with `betas:` twice would run with whichever came second). Merge keys (`<<: *anchor`) still override."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None,
                            None,
                            f"duplicate key '{key}' (first given on line {seen[key] + 1})",
                            key_node.start_mark,
                        )
                    seen[key] = key_node.start_mark.line
                except TypeError:  # an unhashable key: PyYAML's own error follows
                    continue
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str) -> Any:
    """Parse YAML the way every config and schema of the suite is read (safe, duplicate keys refused)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def read_yaml(path: str | os.PathLike) -> Any:
    """One YAML file; a syntax error or a duplicate key becomes one line naming the file, line and column
    (1-based)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found" if not path.exists() else f"{path}: not a file")
    try:
        return load_yaml_text(path.read_text(encoding="utf-8"))
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
        base[k] = (
            merge_config(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else copy.deepcopy(v)
        )
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
