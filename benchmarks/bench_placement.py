"""Placement figures: planning time for 500 models on 64 GPUs, and packing quality on random instances.

Run from the repository root: ``python benchmarks/bench_placement.py [--seed N] [--instances N]``.
Packing quality is GPUs used / ceil(planned memory / GPU memory), averaged over random instances
that fit at full KV cache (1.0 is the lower bound no packer can beat). It is measured without the
final fill, which hands every vLLM GPU's spare room to its models and would inflate "planned".
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from albert_deploy.catalog import EMBEDDINGS, TEXT_GENERATION
from albert_deploy.errors import PlacementError
from albert_deploy.placement import place as placement
from albert_deploy.placement.place import Placement, place
from albert_deploy.profile.model import Profile

LLM = "AgentPublic/guillaumetell-7b"
SMALL = ["intfloat/multilingual-e5-large", "BAAI/bge-reranker-v2-m3", "openai/whisper-large-v3-turbo"]
GPUS = {
    "H100 80GB": {"memory": "81559MiB", "name": "NVIDIA H100 80GB HBM3"},
    "L40S 48GB": {"memory": "46068MiB", "name": "NVIDIA L40S"},
    "L4 24GB": {"memory": "23034MiB", "name": "NVIDIA L4"},
}


def random_model(rng: random.Random, i: int, largest_gb: float) -> dict[str, Any]:
    """A mix like real stacks: catalog LLMs, custom vLLM models up to 60% of a GPU, TEI and whisper."""
    roll = rng.random()
    name = f"m{i}"
    custom = {"name": name}
    if roll < 0.25:
        return {"model": LLM, "name": name, "max_model_len": rng.choice([2048, 4096, 8192, 16384])}
    if roll < 0.55:
        size = rng.uniform(0.5, largest_gb * 0.6)
        return {
            "model": f"org/llm-{i}",
            "name": name,
            "server": "vllm",
            "type": TEXT_GENERATION,
            "memory": f"{size:.2f}GB",
        }
    if roll < 0.85:
        size = rng.uniform(0.2, 3.0)
        return {**custom, "model": f"org/emb-{i}", "server": "tei", "type": EMBEDDINGS, "memory": f"{size:.2f}GB"}
    return {"model": rng.choice(SMALL), "name": name}


def random_profile(rng: random.Random, models: int, gpu: dict[str, str], count: int, largest: float = 0) -> Profile:
    largest = largest or int(gpu["memory"].removesuffix("MiB")) * 2**20 / 1e9
    entries = [{"model": "intfloat/multilingual-e5-large", "name": "e5"}]
    entries += [random_model(rng, i, largest) for i in range(models - 1)]
    return Profile.model_validate({"models": entries, "gpus": {"count": count, **gpu}})


def timing(rng: random.Random) -> None:
    print("Planning time, 500 models on 64 GPUs (H100 80GB), median of 7 runs:")
    for label, tight in (("room to spare (one pass)", False), ("tight: KV caches cut, TEI to CPU", True)):
        # Custom LLMs up to 12 GB here, so that 500 models fit on 64 GPUs.
        profile = random_profile(rng, 500, GPUS["H100 80GB"], 64, largest=20)
        if tight:
            profile = _tightened(profile)
        runs = []
        for _ in range(7):
            start = time.perf_counter()
            try:
                plan = place(profile)
            except PlacementError as err:
                print(f"  {label}: PlacementError: {err}")
                break
            runs.append(time.perf_counter() - start)
        else:
            cut = sum(1 for m in plan.models.values() if m.notes)
            print(f"  {label:<34} {statistics.median(runs) * 1000:7.1f} ms  ({cut} models with a note)")


def _tightened(profile: Profile) -> Profile:
    """The same models on GPUs shrunk until the full-KV plan no longer fits, but a plan still exists."""
    data = profile.model_dump(exclude_none=True)
    for mib in range(81559, 20000, -512):
        data["gpus"]["memory"] = f"{mib}MiB"
        try:
            plan = place(Profile.model_validate(data))
        except PlacementError:
            break
        if any(m.notes for m in plan.models.values()):
            return Profile.model_validate(data)
    return profile


def quality(rng: random.Random, instances: int) -> list[float]:
    print(f"\nPacking quality, pack mode, {instances} random instances per GPU type:")
    print("  GPUs used / ceil(planned / usable GPU memory) and / ceil(planned / total GPU memory)")
    every = []
    for label, gpu in GPUS.items():
        usable_ratios: list[float] = []
        total_ratios: list[float] = []
        while len(usable_ratios) < instances:
            plan = _plan_with_room(rng, gpu)
            if plan is None:
                continue
            used, planned = _used(plan)
            usable = plan.gpus[0].total_bytes - plan.gpus[0].reserved_bytes
            usable_ratios.append(used / math.ceil(planned / usable))
            total_ratios.append(used / math.ceil(planned / plan.gpus[0].total_bytes))
        every += usable_ratios
        print(
            f"  {label:<10} usable: mean {statistics.mean(usable_ratios):.3f} worst {max(usable_ratios):.3f}"
            f" | total: mean {statistics.mean(total_ratios):.3f} worst {max(total_ratios):.3f}"
        )
    print(f"  all        usable: mean {statistics.mean(every):.3f} (target <= 1.1)")
    return every


@contextmanager
def _without_fill() -> Iterator[None]:
    # The fill never moves a model, so GPUs used are the same; only "planned" would grow.
    fill = placement._fill
    placement._fill = lambda ctx, run: None
    try:
        yield
    finally:
        placement._fill = fill


def _plan_with_room(rng: random.Random, gpu: dict[str, str]) -> Placement | None:
    """A random instance on as many GPUs as it could need, where every model keeps its full KV cache."""
    models = rng.randint(5, 80)
    try:
        with _without_fill():
            plan = place(random_profile(rng, models, gpu, 64))
    except PlacementError:
        return None
    if any(m.notes and "tensor parallelism" not in m.notes[0] for m in plan.models.values()):
        return None
    return plan


def _used(plan: Placement) -> tuple[int, int]:
    return sum(1 for g in plan.gpus if g.models), sum(g.used_bytes for g in plan.gpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--instances", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    timing(rng)
    quality(rng, args.instances)


if __name__ == "__main__":
    main()
