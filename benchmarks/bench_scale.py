"""How `render` and the placement (`albert-deploy placement`, formerly `plan-gpus`) grow with the stack:
random profiles of 25 to 500 models on 4 to 64 GPUs (H100 80GB, about 8 models per GPU), timed in-process,
with a least-squares line (ms per model) and its R^2 (1.0: linear). Target: placement of 500 models on
64 GPUs under 1 s. Prints figures; not a test.

Run: python benchmarks/bench_scale.py [--repeat N] [--seed N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_placement import GPUS, random_model

from albert_deploy import commands
from albert_deploy.errors import PlacementError
from albert_deploy.placement.place import place
from albert_deploy.profile.load import load_profile

SIZES = ((25, 4), (50, 7), (100, 13), (200, 26), (300, 39), (400, 52), (500, 64))


def profile_data(rng: random.Random, models: int, gpus: int) -> dict[str, Any]:
    # Custom LLMs up to 12 GB (as in bench_placement.py), so that 500 models fit on 64 GPUs.
    entries: list[dict[str, Any]] = [{"model": "intfloat/multilingual-e5-large", "name": "e5"}]
    entries += [random_model(rng, i, 20) for i in range(models - 1)]
    return {"project": "scale", "models": entries, "gpus": {"count": gpus, **GPUS["H100 80GB"]}}


def fitting_profile(rng: random.Random, models: int, gpus: int, path: Path) -> Path:
    """A random profile of that size that places (a draw that does not fit is drawn again)."""
    for _ in range(50):
        path.write_text(yaml.safe_dump(profile_data(rng, models, gpus), sort_keys=False))
        try:
            place(load_profile(path))
        except PlacementError:
            continue
        return path
    raise SystemExit(f"no random profile of {models} models fits on {gpus} GPUs")


def median_ms(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def fit(xs: list[int], ys: list[float]) -> tuple[float, float, float]:
    """Least squares y = slope * x + intercept, and R^2."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = my - slope * mx
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return slope, intercept, 1 - ss_res / ss_tot if ss_tot else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows: list[tuple[int, int, float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        commands.render(None, Path(tmp) / "warm")  # imports and first model builds are not the stack's size
        print(f"{'models':>6} {'GPUs':>5} {'placement':>10} {'load+placement':>15} {'render':>9}  (ms, median of {args.repeat})")  # fmt: skip
        for models, gpus in SIZES:
            path = fitting_profile(rng, models, gpus, Path(tmp) / f"p{models}.yaml")
            profile = load_profile(path)
            placed = median_ms(lambda p=profile: place(p), args.repeat)  # type: ignore[misc]
            loaded = median_ms(lambda p=path: commands.placement(str(p)), args.repeat)  # type: ignore[misc]
            out = Path(tmp) / f"out{models}"
            rendered = median_ms(lambda p=path, o=out: commands.render(str(p), o), args.repeat)  # type: ignore[misc]
            rows.append((models, gpus, placed, loaded, rendered))
            print(f"{models:6d} {gpus:5d} {placed:10.1f} {loaded:15.1f} {rendered:9.1f}")
    xs = [r[0] for r in rows]
    for column, label in ((2, "placement"), (3, "load+placement"), (4, "render")):
        slope, intercept, r2 = fit(xs, [r[column] for r in rows])
        print(f"{label:<15} {slope:6.3f} ms per model + {intercept:6.1f} ms   R^2 = {r2:.3f}")
    print(f"placement, 500 models x 64 GPUs: {rows[-1][2]:.1f} ms (target < 1000 ms)")


if __name__ == "__main__":
    main()
