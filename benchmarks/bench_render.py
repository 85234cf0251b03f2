"""Whole-process time of `albert-deploy render`: the default profile, and synthetic profiles of
25 to 200 models, with a linear fit to show how time grows with the number of models. Prints figures; not a test.

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


def time_render(profile: Path | None, out: Path, repeat: int) -> tuple[float, float]:
    """(best, median) wall time of the whole process; the best is the least disturbed by noise."""
    command = [sys.executable, "-m", "albert_deploy", "render", "-o", str(out)] + ([str(profile)] if profile else [])
    subprocess.run(command, check=True, capture_output=True)  # warm the page cache and .env
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=11)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        startup = min(_time([sys.executable, "-c", "pass"]) for _ in range(repeat))
        best, median = time_render(None, root / "default", repeat)
        print(f"interpreter start alone (best)   {startup * 1000:7.1f} ms")
        print(f"render, default profile          {best * 1000:7.1f} ms best, {median * 1000:.1f} ms median"
              "  (target < 300 ms, process included)")  # fmt: skip
        sizes = (25, 50, 100, 150, 200)
        timings = []
        for n in sizes:
            path = root / f"p{n}.yaml"
            path.write_text(yaml.safe_dump(synthetic_profile(n)))
            timings.append(time_render(path, root / f"out{n}", repeat)[0])
            print(f"render, {n:3d} models (best)        {timings[-1] * 1000:7.1f} ms")
        slope, intercept, r2 = _fit(sizes, timings)
        print(f"linear fit: {slope * 1000:.2f} ms per model + {intercept * 1000:.0f} ms, R^2 = {r2:.3f} (1.0 = linear)")


def _fit(xs: tuple[int, ...], ys: list[float]) -> tuple[float, float, float]:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = my - slope * mx
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return slope, intercept, 1 - ss_res / ss_tot


def _time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
