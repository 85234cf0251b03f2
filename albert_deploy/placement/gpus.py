"""The GPUs one container gets, as the NVIDIA runtime is asked for them, and how they are shown."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuAssignment:
    """What a container asks of the NVIDIA runtime: explicit device ids, or any ``count`` GPUs."""

    device_ids: tuple[str, ...] = ()
    count: int | None = None


def gpus_text(gpu: GpuAssignment | None) -> str:
    """``0,1``, ``any 2``, or ``-`` without GPUs: the GPUS column of ``render`` and ``up``."""
    if gpu is None:
        return "-"
    return ",".join(gpu.device_ids) if gpu.device_ids else f"any {gpu.count}"
