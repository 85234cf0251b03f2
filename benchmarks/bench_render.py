"""Whole-process time of `albert-deploy render`: the default profile, and synthetic profiles of
25 to 200 models to show how time grows with the number of models. Prints figures; not a test.

Run: python benchmarks/bench_render.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def synthetic_profile(models: int) -> dict[str, object]:
    # TEI on CPU needs no GPU inventory: the cost measured is profile -> plan -> render -> write.
    return {
        "project": "bench",
        "models": [
            {"model": "intfloat/multilingual-e5-large", "name": f"e5-{i}", "gpus": "cpu"} for i in range(models)
        ],
    }


def time_render(profile: Path | None, out: Path, repeat: int) -> float:
    command = [sys.executable, "-m", "albert_deploy", "render", "-o", str(out)] + ([str(profile)] if profile else [])
    subprocess.run(command, check=True, capture_output=True)  # warm the page cache and .env
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        baseline = time_render(None, root / "default", repeat)
        startup = statistics.median(_time([sys.executable, "-c", "pass"]) for _ in range(repeat))
        print(f"interpreter start alone          {startup * 1000:7.1f} ms")
        print(f"render, default profile          {baseline * 1000:7.1f} ms  (target < 300 ms, process included)")
        sizes = (25, 50, 100, 200)
        timings = []
        for n in sizes:
            path = root / f"p{n}.yaml"
            path.write_text(yaml.safe_dump(synthetic_profile(n)))
            timings.append(time_render(path, root / f"out{n}", repeat))
            print(f"render, {n:3d} models               {timings[-1] * 1000:7.1f} ms")
        per_model = [(t - timings[0]) / (n - sizes[0]) * 1000 for n, t in zip(sizes[1:], timings[1:], strict=True)]
        print("marginal cost per model (ms), from 25 to 50/100/200: " + ", ".join(f"{c:.2f}" for c in per_model))
        print(f"linearity: largest/smallest marginal cost = {max(per_model) / min(per_model):.2f} (1.0 = linear)")


def _time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
