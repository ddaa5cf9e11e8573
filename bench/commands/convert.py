"""`bench convert`: make sure an embedded model's safetensors cache exists; print its folder.

Snakemake cannot depend on a folder in the user cache, so the command also writes a small JSON marker
(atomically) naming the folder, for rules to use as their input.
"""

from __future__ import annotations

import argparse
import logging

from bench.errors import ConfigError

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="embedded model spec, e.g. embedded:smollm2-135m")
    p.add_argument("--out", default=None, help="JSON marker to write (for Snakemake)")


def run(args: argparse.Namespace) -> int:
    from bench.models.embedded import EMBEDDED, embedded_model_path
    from bench.utils.io import write_json

    spec = str(args.model)
    if not spec.startswith("embedded:"):
        raise ConfigError(
            f"--model {spec}: expected an embedded model spec, one of {['embedded:' + n for n in sorted(EMBEDDED)]}"
        )
    name = spec.split(":", 1)[1]
    folder = embedded_model_path(name)
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    if args.out:
        write_json(args.out, {"model": spec, "path": str(folder), "files": files, "license": EMBEDDED[name].license})
        log.info("wrote marker %s", args.out)
    print(folder)
    return 0
