"""Every command in README.md, CONTRIBUTING.md and docs/*.md runs as written: each fenced shell command is
checked against what it names (a `bench` command parses with the CLI's own argparse and its repository files
exist; snakemake names existing configs / profiles; scripts and tests exist), Python blocks compile, and the
README stays a front door (under 10,000 characters, its links resolve)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
SHELL = {"bash", "sh", "shell", "console"}
# folders of the repository: a command argument under one of them must exist (runs/ and exports/ are made by runs)
REPO_DIRS = ("config/", "results/", "scripts/", "profiles/", "data/", "tests/", "docs/", "figures/", "workflow/")
# commands that install or set up the machine: not run, named here on purpose
INSTALLERS = {"pip", "apt-get", "sudo", "pre-commit", "hf", "export", "cd", ".", "source"}


def blocks(path: Path) -> list[tuple[str, str, int]]:
    text = path.read_text(encoding="utf-8")
    return [(m[1], m[2], text[: m.start()].count("\n") + 2) for m in FENCE.finditer(text)]


def shell_commands(code: str) -> list[list[str]]:
    """Simple commands of a shell block: comments dropped, `\\` continuations joined, split on && || ; |."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        cmd: list[str] = []
        for w in words + [";"]:
            if w in ("&&", "||", ";", "|"):
                while cmd and re.match(r"^[A-Z_]+=", cmd[0]):  # VAR=value prefixes
                    cmd.pop(0)
                if cmd:
                    out.append(cmd)
                cmd = []
            else:
                cmd.append(w)
    return out


def _cases():
    for path in DOCS:
        for lang, code, line in blocks(path):
            if lang in SHELL:
                for cmd in shell_commands(code):
                    yield pytest.param(path, lang, cmd, id=f"{path.relative_to(REPO)}:{line}:{' '.join(cmd)[:60]}")
            elif lang == "python":
                yield pytest.param(path, lang, code, id=f"{path.relative_to(REPO)}:{line}:python")


def _repo_paths(args: list[str]) -> list[str]:
    return [a for a in args if a.startswith(REPO_DIRS)]


def check_bench(args: list[str]) -> None:
    from bench.cli import build_parser

    parser = build_parser(args, every_command=True)
    try:
        ns = parser.parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"`bench {' '.join(args)}` does not parse (exit {exc.code})")
    for key, value in vars(ns).items():  # inputs under the repository's folders exist; outputs need not
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not key.startswith("out") and isinstance(v, str) and v.startswith(REPO_DIRS):
                assert (REPO / v).exists(), f"bench {' '.join(args)}: {key} {v} does not exist"


def check_snakemake(args: list[str]) -> None:
    configs, profile, i = [], None, 0
    while i < len(args):
        if args[i] == "--configfile":
            i += 1
            while i < len(args) and not args[i].startswith("-"):
                configs.append(args[i])
                i += 1
            continue
        if args[i] == "--profile":
            profile = args[i + 1]
        i += 1
    for cfg in configs:
        if "my" not in Path(cfg).stem:  # an example name the text asks the reader to make
            assert (REPO / cfg).is_file(), f"snakemake --configfile {cfg}: no such config"
    if profile:
        assert (REPO / profile / "config.yaml").is_file(), f"snakemake --profile {profile}: no such profile"


def check_pytest(args: list[str]) -> None:
    for a in args:
        if a.startswith("tests/"):
            file, _, name = a.partition("::")
            assert (REPO / file).is_file(), f"pytest {a}: no such test file"
            if name:
                assert re.search(rf"^def {re.escape(name)}\(", (REPO / file).read_text(), re.M), f"no test {a}"


@pytest.mark.parametrize(("path", "lang", "cmd"), list(_cases()))
def test_documented_command_runs_as_written(path, lang, cmd):
    if lang == "python":
        compile(cmd, str(path), "exec")
        return
    head = cmd[0]
    if head in INSTALLERS or cmd[1:3] in (["-m", "venv"], ["-m", "pip"]):
        return
    is_bench = head == "bench" or cmd[1:3] == ["-m", "bench"]
    for p in [] if is_bench else _repo_paths(cmd[1:]):  # bench: checked on its parsed inputs
        if "my" not in Path(p).stem:
            assert (REPO / p.split("::")[0]).exists(), f"{' '.join(cmd)}: {p} does not exist"
    if head == "bench":
        check_bench(cmd[1:])
    elif head in ("python", "python3") and cmd[1:3] == ["-m", "bench"]:
        check_bench(cmd[3:])
    elif head in ("python", "python3") and cmd[1:3] == ["-m", "pytest"]:
        check_pytest(cmd[3:])
    elif head in ("python", "python3") and cmd[1].endswith(".py"):
        assert (REPO / cmd[1]).is_file(), f"{cmd[1]}: no such script"
    elif head == "snakemake" or cmd[1:3] == ["-m", "snakemake"]:
        check_snakemake(cmd[1:])
    elif head == "bash":
        assert (REPO / cmd[1]).is_file(), f"bash {cmd[1]}: no such script"
    elif head == "ruff":
        assert cmd[1] in ("check", "format")
    else:
        pytest.fail(f"{path.name}: `{' '.join(cmd)}`: no check for `{head}`; add one to tests/test_docs.py")


def test_readme_is_a_front_door_and_its_links_resolve():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text) < 10_000, len(text)
    for doc in [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            if not target.startswith(("http://", "https://")):
                assert (doc.parent / target).exists(), f"{doc.relative_to(REPO)}: link {target} does not resolve"


def test_readme_names_every_subcommand():
    from bench.cli import COMMANDS

    text = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [name for name in COMMANDS if f"`{name}`" not in text]
    assert not missing, f"README.md's command list lacks {missing}"


def test_the_checks_can_fail():
    """The extractor finds commands, and a wrong one is caught."""
    assert shell_commands("A=1 bench compare x && snakemake -n  # note\n") == [
        ["bench", "compare", "x"],
        ["snakemake", "-n"],
    ]
    with pytest.raises(pytest.fail.Exception):
        check_bench(["compare", "--no-such-flag"])
    with pytest.raises(AssertionError):
        check_snakemake(["--configfile", "config/nope.yaml"])
