"""bench pipeline: prepare data -> train reward models -> generate -> score -> tables / figures / report.

    snakemake --cores all                                   # config/default.yaml (offline, small, <= 20 min)
    snakemake --cores 2 --configfile config/test.yaml       # tiny random models: the CI end-to-end test
    snakemake -n --configfile config/paper.yaml             # the papers' scale (GPU cluster: --profile profiles/slurm)
    snakemake --report results/report.html                  # HTML report with every table and figure

Rules are thin: each calls one `bench` subcommand. Intermediates go under `work_dir` (runs/<name>/ by
default), tables under `{results_dir}/tables/`, figures under `{figures_dir}/`. Every rule carries a
`code` param, a hash of the bench sources it runs, so editing the package re-runs what it affects.
"""

import copy
import hashlib
import os
import re
import shlex
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)
# `python -m bench` in every rule finds this checkout even with --directory elsewhere and no pip install
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p)
from bench.config import (  # noqa: E402
    check_sources, merge_config, read_yaml, resource, training_settings, validate_config)
from bench.data.sources import resolve_source as _resolve_source  # noqa: E402
from bench.errors import BenchError  # noqa: E402
from bench.rewards import registry  # noqa: E402  (parametrization names, training modes, teachers; no torch)
from snakemake.exceptions import WorkflowError  # noqa: E402

# Not a `configfile:` directive: Snakemake would merge default.yaml UNDER a --configfile, leaking its keys
# into e.g. the test config. default.yaml applies only when no --configfile is given.
# The one validation of the config (one schema, defaults filled): every rule file reads the filled dict.
# Snakemake parses a --configfile itself, before this file runs (for the line of a YAML syntax error in one,
# `python -m bench check-config FILE`); each is read again here with the suite's loader, which refuses
# duplicate keys naming the file and line.
try:
    for _f in workflow.overwrite_configfiles:  # Snakemake's own YAML reader keeps the last of duplicate keys
        read_yaml(_f)
    if not workflow.overwrite_configfiles:
        _over = copy.deepcopy(dict(config))
        config.clear()
        config.update(merge_config(read_yaml(Path(workflow.basedir) / "config" / "default.yaml"), _over))
    _source = " + ".join(map(str, workflow.overwrite_configfiles)) or "config/default.yaml"
    # The main process also parses every extra_args with its command's parser (imports torch); a job's own
    # re-read of the same config (a SLURM job, a subprocess) skips that repeat.
    validate_config(config, source=_source, command_args=workflow.is_main_process)
    check_sources(config, source=_source)  # every data source resolved now: a folder for a file fails here
except BenchError as _exc:
    raise WorkflowError(str(_exc)) from None

W = config["work_dir"].rstrip("/")
RESULTS = config["results_dir"].rstrip("/")
FIGURES = config["figures_dir"].rstrip("/")
SEED = config["seed"]
BENCH = "python -m bench"
TASKS = {name: t for name, t in config["tasks"].items() if t.get("enabled", True)}
PARAMS = config["training"]["parametrizations"]
DATA_DIR = config["data_dir"]  # an extra folder searched first for relative sources (null: none)


# ---------------------------------------------------------------------------------------- code versions
def _hash_sources():
    root = Path(workflow.basedir) / "bench"
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.py"))
        if "__pycache__" not in p.parts
    }


CODE_FILES = _hash_sources()
# cli.py is not here: it only dispatches to a command's module (adding a subcommand must not re-run a study)
COMMON_CODE = ("__init__.py", "__main__.py", "errors.py", "utils/", "models/")


def code_version(*parts, exclude=()):
    """Hash of the bench sources a rule runs: the common core plus the given subpackages / modules, less
    `exclude` (modules of a listed subpackage the rule never imports)."""
    h = hashlib.sha256()
    for rel, digest in CODE_FILES.items():
        wanted = COMMON_CODE + parts
        if rel not in exclude and any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in wanted):
            h.update(f"{rel}:{digest}\n".encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------- helpers
def res(rule_name, key):
    """A rule's resource from config.resources.<rule> -> resources.default -> built-in default."""
    return resource(config, rule_name, key)


def name_pattern(names):
    """A wildcard constraint matching exactly these names."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def resolve_source(src):
    """The package's one resolver: a hub id stays as is; a local file/folder is looked up under config data_dir,
    then the shipped data/, $BENCH_DATA_DIR and the working directory. Inside the working directory it is given
    relative to it, so a run folder that moves (a clone renamed, copied to another disk) keeps its params and
    does not redo everything from `prepare` on."""
    try:
        found = _resolve_source(src, extra_root=DATA_DIR)
    except BenchError as exc:
        raise WorkflowError(f"config: data source {exc}") from None
    if found.kind == "local":
        rel = os.path.relpath(found.value, os.getcwd())
        if not rel.startswith(os.pardir):
            return rel
    return found.value


def local_source(src):
    """The source as a Snakemake input when it is a local file or folder (so edits re-run), else []."""
    path = resolve_source(src)
    return [path] if os.path.exists(path) else []


def model_markers(*specs):
    """Conversion markers of the embedded models among `specs` (bench convert runs once per model)."""
    convert = set(config["models"]["convert"])
    return [f"{W}/models/{s.split(':', 1)[1]}.json" for s in specs if s and s in convert]


def fmt_beta(b):
    return f"{float(b):g}"


THREADS_ENV = "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}"

# Every rule that writes to results/ or figures/ also reads this stamp of the run folder. Those outputs are
# committed, and Snakemake does not rebuild missing intermediates beneath targets that exist: without the
# stamp (a target of `all`, so a missing one is made), a fresh clone's `snakemake --cores all` would do nothing. A new run folder -> a new stamp -> the
# committed tables and figures are older than an input -> the whole DAG runs.
RUN_STAMP = f"{W}/run_started.txt"
# Every rule writes a Snakemake benchmark record (wall time, peak memory, CPU time) here:
# {BENCHMARKS}/<rule>/<wildcards>.tsv, or {BENCHMARKS}/<rule>.tsv for a rule without wildcards. `bench cost`
# reads them into results/tables/cost.{csv,md} (rule `cost`, workflow/rules/report.smk).
BENCHMARKS = f"{W}/benchmarks"


# With the stamp, the software the run ran with (python, platform, torch + CUDA, transformers, every package and
# their digest): compare two runs' files, or with requirements/lock-cpu.txt (docs/reproducibility.md).
ENVIRONMENT = f"{W}/environment.json"


rule run_stamp:
    output:
        stamp=RUN_STAMP,
        environment=ENVIRONMENT,
    benchmark:
        f"{BENCHMARKS}/run_stamp.tsv",
    shell:
        "date -u '+%Y-%m-%dT%H:%M:%SZ' > {output.stamp:q} && {BENCH} environment --out {output.environment:q}"


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/diagnose.smk"


report: "workflow/report/workflow.rst"


# Only trivial rules stay on the submitting node (a `date`, a `cat`); everything else, statistics included,
# is a job with the resources its config entry names (resources.report for tables / figures / cost).
localrules: all, run_stamp, merge_splits


rule all:
    input:
        RUN_STAMP,
        report_targets(),
        analysis_targets(),
        agreement_targets(),
        cost_targets(),
        html_report_targets(),
    default_target: True
