"""GPU placement as JSON (`placement --json`) and as a table per GPU (`placement`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from albert_deploy import catalog
from albert_deploy.placement.memory import MIB
from albert_deploy.sizes import gb

if TYPE_CHECKING:
    from albert_deploy.placement.place import GpuUsage, ModelPlacement, Placement


def placement_report(placement: Placement) -> dict[str, Any]:
    """JSON-ready placement, for `placement --json`."""
    return {
        "gpus": [_gpu_report(g) for g in placement.gpus],
        "models": {name: _model_report(m) for name, m in placement.models.items()},
    }


def _gpu_report(g: GpuUsage) -> dict[str, Any]:
    return {
        "device_id": g.device_id,
        "index": g.index,
        "name": g.name,
        "total_bytes": g.total_bytes,
        "reserved_bytes": g.reserved_bytes,
        "used_bytes": g.used_bytes,
        "free_bytes": g.free_bytes,
        "models": [{"model": name, "bytes": size} for name, size in g.models],
    }


def _model_report(m: ModelPlacement) -> dict[str, Any]:
    gpu = m.gpu
    return {
        "server": m.server,
        "device": "cpu" if gpu is None else "gpu",
        "device_ids": list(gpu.device_ids) if gpu and gpu.device_ids else None,
        "count": gpu.count if gpu else None,
        "memory_bytes": m.memory_bytes,
        "gpu_memory_utilization": m.gpu_memory_utilization,
        "tensor_parallel_size": m.tensor_parallel_size,
        "compute_capability": "{}.{}".format(*m.compute_capability) if m.compute_capability else None,
        "max_model_len": m.max_model_len,
        "kv_cache_bytes": m.kv_cache_bytes,
        "notes": list(m.notes),
    }


def format_placement(placement: Placement) -> str:
    """A table per GPU: its models, each one's budget, used and free memory, and derived flags."""
    lines = []
    if not placement.gpus:
        lines.append("no GPU inventory in the profile: assignments only (declare `gpus:` for memory figures)")
    for g in placement.gpus:
        lines.append(
            f"GPU {g.device_id}" + (f" {g.name}" if g.name else "") + f": {gb(g.total_bytes)} "
            f"({g.total_bytes // MIB} MiB), {gb(g.used_bytes)} planned, {gb(g.free_bytes)} free "
            f"({gb(g.reserved_bytes)} kept back)"
        )
        for name, size in g.models:
            lines.append(f"  {name:<32} {gb(size):>9}  {_flags(placement.models[name])}".rstrip())
        if not g.models:
            lines.append("  (unused)")
    rest = [m for m in placement.models.values() if m.gpu is None or not placement.gpus]
    if rest:
        lines.append("models without a GPU budget:")
        lines += [f"  {m.model:<32} {_where(m):>9}  {_flags(m)}".rstrip() for m in rest]
    notes = [f"  {m.model}: {note}" for m in placement.models.values() for note in m.notes]
    return "\n".join(lines + (["notes:", *notes] if notes else []))


def _where(m: ModelPlacement) -> str:
    if m.gpu is None:
        return "CPU"
    return f"GPU {','.join(m.gpu.device_ids)}" if m.gpu.device_ids else f"{m.gpu.count} GPU"


def _flags(m: ModelPlacement) -> str:
    flags = [m.server or ""]
    if m.gpu_memory_utilization is not None:
        flags.append(f"gpu-memory-utilization {m.gpu_memory_utilization:.2f}")
    if m.tensor_parallel_size > 1:
        flags.append(f"tensor-parallel-size {m.tensor_parallel_size}")
    if m.max_model_len:
        flags.append(f"max-model-len {m.max_model_len}")
    if m.kv_cache_bytes:
        flags.append(f"KV cache {gb(m.kv_cache_bytes)}")
    if m.server == "tei":
        flags.append("image " + catalog.tei_tag(m.compute_capability, m.gpu is not None))
    return ", ".join(f for f in flags if f)
