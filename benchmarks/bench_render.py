"""Whole-process time of `albert-deploy render` (default profile) against the import floor: a process
that only imports pydantic, jinja2, yaml and click. Prints the floor, the render time and the ratio
(target <= 1.5). Prints figures; not a test. Scaling with the number of models: bench_scale.py.

Both commands alternate (floor, render, floor, render, ...) so that a busy machine disturbs both alike;
the figures are medians. Bytecode is cached in a temporary PYTHONPYCACHEPREFIX for both, as an installed
package has its .pyc files (PYTHONDONTWRITEBYTECODE would otherwise make every run compile our modules).

Run: python benchmarks/bench_render.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR = "import pydantic, jinja2, yaml, click"


def child_env(pycache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(pycache)}


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of the whole child process; CPU time (user + system) suffers less from a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def measure(commands: dict[str, list[str]], repeat: int, env: dict[str, str]) -> dict[str, list[tuple[float, float]]]:
    """Each command ``repeat`` times, in alternation, after one warm-up run each (page cache, .pyc, .env)."""
    for command in commands.values():
        timed(command, env)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, command in commands.items():
            times[name].append(timed(command, env))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=11)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as tmp:
        env = child_env(Path(tmp) / "pycache")
        commands = {
            "floor": [sys.executable, "-c", FLOOR],
            "render": [sys.executable, "-m", "albert_deploy", "render", "-o", str(Path(tmp) / "deploy")],
        }
        times = measure(commands, repeat, env)
    for column, label in ((0, "wall"), (1, "CPU (user+sys)")):
        floor = statistics.median(t[column] for t in times["floor"])
        render = statistics.median(t[column] for t in times["render"])
        print(f"{label}, median of {repeat} alternating runs:")
        print(f"  import floor ({FLOOR})  {floor * 1000:7.1f} ms")
        print(f"  albert-deploy render, default profile       {render * 1000:7.1f} ms")
        print(f"  ratio render / floor                        {render / floor:7.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
