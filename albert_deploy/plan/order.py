"""The start order of the model servers that share a GPU, computed once for every target.

Why (``docs/memory-model.md``, "Starting servers that share a GPU", with the upstream lines):

- vLLM sizes its KV cache from the GPU's device-wide free memory, measured from its init snapshot
  to the end of its profile run (vllm@v0.11.0 ``vllm/v1/worker/gpu_worker.py:182-195, 259-280``,
  ``vllm/utils/__init__.py:2760, 2779-2786, 2896-2898``), then allocates its KV cache and CUDA
  graphs without measuring again (``gpu_worker.py:307-344``). A neighbour that allocates or frees
  memory on its GPU meanwhile shrinks or over-estimates that cache, or trips the assert at
  ``gpu_worker.py:271-278``. So a vLLM server loads **alone** on each of its GPUs: nothing else of
  the stack is loading there, and two vLLM servers on one GPU load one after the other.
- TEI and whisper measure nothing: they allocate a fixed budget as they load (TEI 1.8
  ``router/src/lib.rs:239-261``, whisper ``app/utils/lifespan.py:18-37``), so they load in
  parallel with each other.

Per GPU: its vLLM servers one at a time (largest memory budget first, then by name; one ranking
for every GPU, so servers spanning several GPUs never wait on each other in a cycle), then every
other server of that GPU at once, each step once the previous step is healthy. vLLM goes first:
it then measures a GPU on which no process of the stack exists, so its figures depend on no
neighbour staying idle (TEI's memory after warm-up is not established). Servers on different GPUs,
and CPU services, start in parallel. Compose's ``depends_on``, the runbook, ``diff`` and ``up`` all
read this one order.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from graphlib import CycleError, TopologicalSorter

from albert_deploy.errors import RenderError
from albert_deploy.plan.spec import GpuStartOrder, Service

# Servers that measure the GPU's free memory while they start (see the module docstring).
MEASURES_FREE_MEMORY = frozenset({"vllm"})


def loads_alone(service: Service) -> bool:
    return service.server in MEASURES_FREE_MEMORY


def gpu_start_order(services: Sequence[Service], memory: Mapping[str, int]) -> tuple[GpuStartOrder, ...]:
    """Per device id (in natural order: 2 before 10), its servers in start steps.

    ``memory``: service name -> its planned budget per GPU. Services without a device id (CPU, or
    "any N" GPUs) appear in no step."""
    on_gpu = [s for s in services if s.gpu and s.gpu.device_ids]
    # One ranking for every GPU, so that the chains of servers spanning several GPUs never cross.
    ranked = sorted(on_gpu, key=lambda s: (-memory.get(s.name, 0), s.name))
    devices = sorted({d for s in on_gpu for d in s.gpu.device_ids}, key=lambda d: (len(d), d))  # type: ignore[union-attr]
    orders = []
    for device in devices:
        here = [s for s in ranked if device in s.gpu.device_ids]  # type: ignore[union-attr]
        steps = [(s.name,) for s in here if loads_alone(s)]
        together = tuple(sorted(s.name for s in here if not loads_alone(s)))
        orders.append(GpuStartOrder(device, (*steps, together) if together else tuple(steps)))
    _refuse_cycles(orders)
    return tuple(orders)


def waits_for(order: Sequence[GpuStartOrder]) -> dict[str, list[str]]:
    """Server -> the servers it starts after (every server of the previous step on each of its GPUs)."""
    after: dict[str, list[str]] = {}
    for gpu in order:
        for before, step in itertools.pairwise(gpu.steps):
            for name in step:
                after.setdefault(name, []).extend(n for n in before if n not in after.get(name, []))
    return after


def _refuse_cycles(order: Sequence[GpuStartOrder]) -> None:
    try:
        TopologicalSorter(waits_for(order)).prepare()
    except CycleError as err:  # the one ranking rules it out; a cycle would be a bug here
        raise RenderError(f"internal error: GPU start order has a cycle {err.args[1]}; please report it") from None


def chained(services: Sequence[Service], order: Sequence[GpuStartOrder]) -> list[Service]:
    """``services`` with each server depending on every server of the step before it, on each of its GPUs."""
    after = waits_for(order)
    return [
        dataclasses.replace(s, depends_on=tuple(dict.fromkeys([*s.depends_on, *after.get(s.name, [])])))
        for s in services
    ]
