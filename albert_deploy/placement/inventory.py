"""The GPU inventory: the profile's `gpus`, or what NVML reports for `gpus: auto`.

Only :func:`detect_gpus` touches the host, and it imports nvidia-ml-py lazily so that importing
the placement stays fast.
"""

from __future__ import annotations

from typing import Any

from albert_deploy import catalog
from albert_deploy.errors import PlacementError
from albert_deploy.placement.memory import _Gpu
from albert_deploy.profile.gpus import Gpu, GpuPool
from albert_deploy.profile.model import Profile
from albert_deploy.sizes import Size

_NO_DRIVER = "no NVIDIA driver found ({}): declare `gpus:` in the profile or use a CPU profile"


def detect_gpus() -> list[Gpu]:
    """The host's GPUs as NVML reports them."""
    try:
        import pynvml
    except ImportError:
        raise PlacementError(_NO_DRIVER.format("nvidia-ml-py is not installed")) from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        raise PlacementError(_NO_DRIVER.format(f"NVML: {err}")) from None
    try:
        gpus = [_read_gpu(pynvml, i) for i in range(pynvml.nvmlDeviceGetCount())]
    except pynvml.NVMLError as err:
        raise PlacementError(_NO_DRIVER.format(f"NVML: {err}")) from None
    finally:
        pynvml.nvmlShutdown()
    if not gpus:
        raise PlacementError(_NO_DRIVER.format("the driver reports no GPU"))
    return gpus


def _read_gpu(nvml: Any, index: int) -> Gpu:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
    uuid = _text(nvml.nvmlDeviceGetUUID(handle))
    return Gpu(
        index=index,
        uuid=uuid if uuid.startswith("GPU-") else None,
        memory=Size(nvml.nvmlDeviceGetMemoryInfo(handle).total),
        name=_text(nvml.nvmlDeviceGetName(handle)),
        compute_capability=f"{major}.{minor}",
    )


def _text(value: str | bytes) -> str:
    # Older nvidia-ml-py releases return bytes.
    return value.decode() if isinstance(value, bytes) else value


def host_gpus(profile: Profile) -> list[_Gpu] | None:
    """The profile's GPUs (detected for `gpus: auto`); None when it declares none."""
    spec = profile.gpus
    if spec is None:
        return None
    if spec == "auto":
        spec = detect_gpus()
    keep = profile.gpu_keep_free
    if isinstance(spec, GpuPool):
        cc = _capability(spec.compute_capability, spec.name)
        return [_Gpu(i, i, str(i), None, spec.name, spec.memory, cc, keep) for i in range(spec.count)]
    gpus = [
        _Gpu(
            pos,
            g.index,
            g.uuid or str(g.index),
            g.uuid,
            g.name,
            g.memory,
            _capability(g.compute_capability, g.name),
            keep,
        )
        for pos, g in enumerate(spec)
    ]
    _check_unique(gpus)
    return gpus


def _capability(text: str | None, name: str | None) -> tuple[int, int] | None:
    if text:
        major, minor = text.split(".")
        return int(major), int(minor)
    known = catalog.gpu_by_name(name) if name else None
    return known.compute_capability if known else None


def _check_unique(gpus: list[_Gpu]) -> None:
    seen: set[str] = set()
    for g in gpus:
        for key in (str(g.index), (g.uuid or "").lower()):
            if key in seen:
                raise PlacementError(f"gpus: GPU {key} is listed twice: list each GPU once")
            if key:
                seen.add(key)
