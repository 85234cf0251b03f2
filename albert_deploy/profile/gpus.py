"""The host's GPUs as a profile declares them: a pool of identical GPUs, or a list."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, Field, model_validator

from albert_deploy import catalog
from albert_deploy.profile.bounds import positive_memory
from albert_deploy.profile.strict import Strict, _key
from albert_deploy.sizes import Size

# nvidia-smi never reports a GPU without memory; 0 would give every model "no room" messages.
GpuMemory = Annotated[Size, AfterValidator(positive_memory)]


def _memory_from_name(data: Any) -> Any:
    # nvidia-smi's name is enough for a known GPU: its memory comes from the catalog.
    if isinstance(data, dict) and "memory" not in data and isinstance(data.get("name"), str):
        known = catalog.gpu_by_name(data["name"])
        if known is None:
            raise _key(
                "memory",
                f"'{data['name']}' is not a GPU albert-deploy knows: give its `memory` as nvidia-smi prints it, e.g. 81559MiB",
            )
        return {**data, "memory": f"{known.memory_mib}MiB"}
    return data


class Gpu(Strict):
    """One GPU of the host."""

    _fill_memory = model_validator(mode="before")(_memory_from_name)

    index: int = Field(ge=0, le=1023, strict=True, description="Index as nvidia-smi numbers it.")
    uuid: str | None = Field(None, pattern=r"^GPU-[0-9a-fA-F-]+$", description="GPU UUID (survives renumbering).")
    memory: GpuMemory = Field(
        description="Total memory, e.g. 81559MiB as nvidia-smi prints it; optional for a known `name`."
    )
    name: str | None = Field(None, description="Model name as nvidia-smi prints it, e.g. 'NVIDIA L4'.")
    compute_capability: str | None = Field(
        None, pattern=r"^\d+\.\d+$", description="e.g. '8.9'; found from name when omitted."
    )


class GpuPool(Strict):
    """``count`` identical GPUs, indexed from 0."""

    _fill_memory = model_validator(mode="before")(_memory_from_name)

    count: int = Field(ge=1, le=64, strict=True)
    memory: GpuMemory = Field(description="Memory of each GPU; optional for a known `name`.")
    name: str | None = None
    compute_capability: str | None = Field(None, pattern=r"^\d+\.\d+$")


GpuInventory = Union[Literal["auto"], GpuPool, list[Gpu]]


def declared_memory(inventory: GpuInventory | None) -> list[tuple[str, Size]]:
    """Each declared GPU's memory, as (name in a message, memory); none for `auto` or no GPUs."""
    if isinstance(inventory, GpuPool):
        return [("each GPU", inventory.memory)]
    if isinstance(inventory, list):
        return [(f"GPU {g.index}", g.memory) for g in inventory]
    return []
