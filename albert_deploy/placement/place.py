"""GPU placement: which model runs on which GPU, and with how much memory.

Pure planning: a Profile in, a Placement out. The memory model and its constants are explained in
docs/memory-model.md. This module holds the public results and the steps of :func:`place`; the
parts live beside it:

- ``inventory``: the profile's GPUs, or the host's (``detect_gpus``, the only code that touches it);
- ``memory``: what one model needs on one GPU (weights, KV cache, runtime, constants);
- ``search``: the packing search (pins, best or worst fit, tensor-parallel splits);
- ``fill``: the room left on each GPU given to its vLLM models as KV cache;
- ``checks``: the checks before packing and the messages when a profile does not fit;
- ``report``: the placement as JSON and as a table (the ``placement`` command).
"""

from __future__ import annotations

from dataclasses import dataclass

from albert_deploy.errors import PlacementError
from albert_deploy.placement import inventory
from albert_deploy.placement.checks import _check_alone, _check_pins_apart, _packing_error, _require_weights
from albert_deploy.placement.fill import _fill  # looked up here by _best_run (benchmarks/bench_placement.py swaps it)
from albert_deploy.placement.gpus import GpuAssignment
from albert_deploy.placement.inventory import detect_gpus
from albert_deploy.placement.memory import (
    CUDA_GRAPH_HEADROOM,
    DEFAULT_MAX_MODEL_LEN,
    DEFAULT_NUM_SEQS,
    DEFAULT_RUNTIME_GIB,
    GIB,
    GPU_RESERVE_FRACTION,
    GPU_RESERVE_MIN,
    KV_DTYPE_BYTES,
    MAX_PCT,
    MIB,
    TP_OVERHEAD,
    UNKNOWN_KV_FRACTION,
    UNKNOWN_KV_MIN,
    Request,
    _check_one_gpu,
    _Gpu,
    _Need,
    _need,
)
from albert_deploy.placement.search import Strategy, _Ctx, _groups, _kv_of, _resolve_pins, _Run, _run, _Slot
from albert_deploy.profile.gpus import Gpu
from albert_deploy.profile.model import HostedModel, Profile
from albert_deploy.sizes import gb

__all__ = [
    "CUDA_GRAPH_HEADROOM",
    "DEFAULT_MAX_MODEL_LEN",
    "DEFAULT_NUM_SEQS",
    "DEFAULT_RUNTIME_GIB",
    "GIB",
    "GPU_RESERVE_FRACTION",
    "GPU_RESERVE_MIN",
    "KV_DTYPE_BYTES",
    "MAX_PCT",
    "MIB",
    "TP_OVERHEAD",
    "UNKNOWN_KV_FRACTION",
    "UNKNOWN_KV_MIN",
    "Gpu",
    "GpuAssignment",
    "GpuUsage",
    "ModelPlacement",
    "Placement",
    "PlacementError",
    "Request",
    "Strategy",
    "detect_gpus",
    "place",
]


# --- Public results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelPlacement:
    model: str  # profile model name (HostedModel.name)
    gpu: GpuAssignment | None  # None: CPU
    memory_bytes: int  # planned budget on EACH of its GPUs (0 on CPU or without inventory)
    gpu_memory_utilization: float | None  # vLLM, when the GPU's total is known
    tensor_parallel_size: int
    compute_capability: tuple[int, int] | None
    max_model_len: int | None  # vLLM: the context length to pass
    kv_cache_bytes: int = 0  # vLLM: KV cache the budget leaves (all GPUs together)
    notes: tuple[str, ...] = ()  # why the plan differs from what the profile asked, in words
    server: str | None = None


@dataclass(frozen=True)
class GpuUsage:
    device_id: str
    index: int
    name: str | None
    total_bytes: int
    used_bytes: int  # sum of the models' budgets
    models: tuple[tuple[str, int], ...]  # (model name, bytes), in profile order
    reserved_bytes: int = 0  # kept back: the driver's share plus the profile's gpu_keep_free

    @property
    def free_bytes(self) -> int:
        return self.total_bytes - self.reserved_bytes - self.used_bytes


@dataclass(frozen=True)
class Placement:
    models: dict[str, ModelPlacement]  # every hosted model, in profile order
    gpus: tuple[GpuUsage, ...]  # empty without an inventory


# --- Placement ------------------------------------------------------------------------------------


def place(profile: Profile) -> Placement:
    """Where each hosted model runs; raises PlacementError with numbers and remedies."""
    needs = [_need(i, m) for i, m in enumerate(profile.models) if isinstance(m, HostedModel)]
    for need in needs:
        _check_one_gpu(need)
    gpus = inventory.host_gpus(profile)
    if gpus is None:
        if not profile.share_gpus:  # pins as written: no inventory tells an index from a UUID
            _check_pins_apart(
                [(n, [(str(p), str(p)) for p in n.request]) for n in needs if isinstance(n.request, list)]
            )
        return Placement(models={n.name: _without_inventory(n) for n in needs}, gpus=())
    return _place_on(gpus, needs, profile)


def _cpu(need: _Need, *notes: str) -> ModelPlacement:
    return ModelPlacement(need.name, None, 0, None, 1, None, need.max_model_len, notes=notes, server=need.server)


def _without_inventory(need: _Need) -> ModelPlacement:
    request = need.request
    if need.on_cpu:
        return _cpu(need)
    if request == "auto":
        if need.optional:
            return _cpu(need, "no GPU inventory in the profile: runs on CPU")
        raise PlacementError(
            f"models.{need.pos}.gpus: {need.name} needs a GPU and the profile declares none: "
            "add `gpus:` (e.g. `gpus: {count: 1, memory: 24GB}`) or pin the model (`gpus: [0]`)"
        )
    if isinstance(request, list):
        gpu = GpuAssignment(device_ids=tuple(str(p) for p in request))
    else:
        gpu = GpuAssignment(count=int(request))
    split = (need.count or 1) if need.vllm else 1
    return ModelPlacement(need.name, gpu, 0, None, split, None, need.max_model_len, server=need.server)


def _place_on(gpus: list[_Gpu], needs: list[_Need], profile: Profile) -> Placement:
    on_gpu = [n for n in needs if not n.on_cpu]
    for need in on_gpu:
        _require_weights(need)
    pins = {n.name: _resolve_pins(n, gpus) for n in on_gpu if isinstance(n.request, list)}
    ctx = _Ctx(gpus, _groups(gpus), pins, {n.name: n for n in needs})
    if not profile.share_gpus:
        labels = {g.pos: f"{g.index} ({g.device_id})" for g in gpus}
        _check_pins_apart([(ctx.by_name[name], [(p, labels[p]) for p in pos]) for name, pos in pins.items()])
    _check_alone(ctx, on_gpu)
    run = _best_run(ctx, on_gpu, profile.placement)
    return _assemble(ctx, needs, run)


# --- Choosing a plan ------------------------------------------------------------------------------


def _best_run(ctx: _Ctx, needs: list[_Need], mode: Strategy) -> _Run:
    """Every model at its full KV cache if it fits; else the fewest TEI models moved to CPU, then the
    smallest KV cuts, with KV caches cut toward one sequence. Each plan is filled before comparing."""
    runs = [_run(ctx, needs, "target", mode)]
    if runs[0].failure is not None or runs[0].spilled:
        other: Strategy = "spread" if mode == "pack" else "pack"
        runs += [_run(ctx, needs, "floor", s) for s in (mode, other)]
    done = [r for r in runs if r.failure is None]
    if not done:
        raise _packing_error(ctx, needs, runs[1])
    for run in done:
        _fill(ctx, run)
    return min(done, key=lambda r: (len(r.spilled), -_kv_kept(ctx, r)))


def _kv_kept(ctx: _Ctx, run: _Run) -> int:
    """KV cache up to what each model was sized for: the fill's extra on one model does not make up
    for a cut on another."""
    return sum(min(_kv_of(ctx, ctx.by_name[n], slot), ctx.by_name[n].kv_target) for n, slot in run.slots.items())


# --- Results --------------------------------------------------------------------------------------


def _assemble(ctx: _Ctx, needs: list[_Need], run: _Run) -> Placement:
    models = {}
    for need in needs:
        slot = run.slots.get(need.name)
        if slot is not None:
            models[need.name] = _on_gpus(ctx, need, slot)
        elif need.name in run.spilled:
            models[need.name] = _cpu(need, "no room left on the GPUs: runs on CPU (`gpus: 1` requires a GPU)")
        else:
            models[need.name] = _cpu(need)
    usage = tuple(_usage(g, needs, run) for g in ctx.gpus)
    return Placement(models=models, gpus=usage)


def _on_gpus(ctx: _Ctx, need: _Need, slot: _Slot) -> ModelPlacement:
    gpus = [ctx.gpus[p] for p in slot.positions]
    kv = _kv_of(ctx, need, slot)
    return ModelPlacement(
        model=need.name,
        gpu=GpuAssignment(device_ids=tuple(g.device_id for g in gpus)),
        memory_bytes=max(slot.bytes_on),
        gpu_memory_utilization=None if slot.pct is None else slot.pct / 100,
        tensor_parallel_size=len(gpus) if need.vllm else 1,
        compute_capability=_common_capability(gpus),
        max_model_len=need.max_model_len,
        kv_cache_bytes=kv,
        notes=_notes(need, slot, kv),
        server=need.server,
    )


def _common_capability(gpus: list[_Gpu]) -> tuple[int, int] | None:
    caps = [g.cc for g in gpus]
    return None if any(c is None for c in caps) else min(c for c in caps if c is not None)


def _notes(need: _Need, slot: _Slot, kv: int) -> tuple[str, ...]:
    notes = []
    if slot.split:
        notes.append(f"split over {len(slot.positions)} GPUs (tensor parallelism): too large for one")
    if need.elastic and kv < need.kv_target:
        seqs = kv // need.kv_per_token // need.seq_tokens
        notes.append(
            f"KV cache cut to {gb(kv)} to fit (about {seqs} sequences of {need.seq_tokens} tokens, "
            f"planned {DEFAULT_NUM_SEQS}); a set max_num_seqs is never cut"
        )
    return tuple(notes)


def _usage(gpu: _Gpu, needs: list[_Need], run: _Run) -> GpuUsage:
    models = []
    for need in needs:
        slot = run.slots.get(need.name)
        if slot is not None and gpu.pos in slot.positions:
            models.append((need.name, slot.bytes_on[slot.positions.index(gpu.pos)]))
    used = sum(size for _, size in models)
    return GpuUsage(gpu.device_id, gpu.index, gpu.name, gpu.total, used, tuple(models), gpu.reserve)
