"""The `bench` entry point: only the chosen subcommand is imported."""

import subprocess
import sys


def _imports_torch(code: str) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1] == "True"


def test_light_commands_do_not_import_torch():
    assert not _imports_torch("from bench.cli import build_parser; build_parser(['tables', '--help'][:1])")
    assert not _imports_torch("from bench.cli import build_parser; build_parser(['-v', 'figures'])")
    # the heavy one does, so the check above is not vacuous
    assert _imports_torch("from bench.cli import build_parser; build_parser(['train'])")


def test_every_subcommand_still_parses_its_own_arguments():
    from bench.cli import COMMANDS, build_parser

    parser = build_parser(every_command=True)
    choices = parser._subparsers._group_actions[0].choices
    assert set(choices) == set(COMMANDS)
    for name, sub in choices.items():
        assert len(sub._actions) > 1, f"{name} has no arguments"
