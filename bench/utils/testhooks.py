"""Points where a resumable command says "my progress so far is on disk", for kill -9 tests.

Tests must not kill after a guessed delay (on a fast machine the kill lands after the end, on a slow one
before any progress). A command calls `progress_point(event)` right after it made progress durable; two
environment variables, unset in normal runs, act there:

* `BENCH_TEST_KILL_AT=<event>:<n>`: at the n-th `event` the process SIGKILLs itself (a kill -9 at that point);
* `BENCH_TEST_PAUSE_AT=<event>:<n>` with `BENCH_TEST_PAUSE_DIR=<folder>`: at the n-th `event` the process
  writes `<folder>/<event>.<pid>` and waits (until killed, or until `<folder>/release` exists), so a test can
  kill -9 a whole process tree (Snakemake and its jobs), or cancel one job, at a known point.

Events: `generate-batch` (a batch appended to the partial file), `train-checkpoint` (a checkpoint written),
`score-batch` (a batch of scores committed to the cache).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

_seen: Counter = Counter()


def _wanted(var: str, event: str) -> int:
    for item in (os.environ.get(var) or "").split(","):
        name, _, n = item.strip().partition(":")
        if name == event:
            return int(n or 1)
    return 0


def progress_point(event: str) -> None:
    kill, pause = _wanted("BENCH_TEST_KILL_AT", event), _wanted("BENCH_TEST_PAUSE_AT", event)
    if not (kill or pause):
        return
    _seen[event] += 1
    if kill and _seen[event] == kill:
        os.kill(os.getpid(), signal.SIGKILL)
    if pause and _seen[event] == pause:
        folder = Path(os.environ.get("BENCH_TEST_PAUSE_DIR") or ".")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{event}.{os.getpid()}").write_text(f"{_seen[event]}\n")
        while not (folder / "release").exists():  # until the test kills or releases us
            time.sleep(0.05)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (read from /proc; Linux), children listed after their parents."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(proc) -> int:
    """kill -9 a started process (a `subprocess.Popen`) and everything below it at once, as a power cut would;
    returns how many processes were signalled."""
    pids = [proc.pid, *descendants(proc.pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=60)
    return len(pids)
