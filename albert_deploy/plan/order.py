"""The start order of the model servers that share a GPU, computed once for every target.

vLLM measures free memory when it starts, so a neighbour loading at the same moment can make it
fail: servers sharing a GPU start one after another, largest memory budget first, each once the
previous one on each of its GPUs is healthy. Servers on different GPUs, and CPU services, start in
parallel. Compose's ``depends_on``, the runbook and the dry run all read this one order.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from graphlib import CycleError, TopologicalSorter

from albert_deploy.errors import RenderError
from albert_deploy.plan.spec import GpuStartOrder, Service


def gpu_start_order(services: Sequence[Service], memory: Mapping[str, int]) -> tuple[GpuStartOrder, ...]:
    """Per device id (in natural order: 2 before 10), its servers in start order.

    ``memory``: service name -> its planned budget per GPU. Services without a device id (CPU, or
    "any N" GPUs) appear in no chain."""
    on_gpu = [s for s in services if s.gpu and s.gpu.device_ids]
    # One ranking for every GPU, so that the chains of servers spanning several GPUs never cross.
    ranked = sorted(on_gpu, key=lambda s: (-memory.get(s.name, 0), s.name))
    devices = sorted({d for s in on_gpu for d in s.gpu.device_ids}, key=lambda d: (len(d), d))  # type: ignore[union-attr]
    chains = {d: [s.name for s in ranked if d in s.gpu.device_ids] for d in devices}  # type: ignore[union-attr]
    graph: dict[str, set[str]] = {s.name: set() for s in ranked}
    for chain in chains.values():
        for before, after in itertools.pairwise(chain):
            graph[after].add(before)
    try:
        position = {name: i for i, name in enumerate(TopologicalSorter(graph).static_order())}
    except CycleError as err:  # the one ranking rules it out; a cycle would be a bug here
        raise RenderError(f"internal error: GPU start order has a cycle {err.args[1]}; please report it") from None
    return tuple(GpuStartOrder(d, tuple(sorted(chains[d], key=position.__getitem__))) for d in devices)


def chained(services: Sequence[Service], order: Sequence[GpuStartOrder]) -> list[Service]:
    """``services`` with each server depending on the one before it on each of its GPUs."""
    after: dict[str, list[str]] = {}
    for gpu in order:
        for before, name in itertools.pairwise(gpu.services):
            after.setdefault(name, []).append(before)
    return [
        dataclasses.replace(s, depends_on=tuple(dict.fromkeys([*s.depends_on, *after.get(s.name, [])])))
        for s in services
    ]
