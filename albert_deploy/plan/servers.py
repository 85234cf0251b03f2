"""Model servers as services: the catalog's facts plus a model and its placement."""

from __future__ import annotations

import dataclasses
import re

from albert_deploy import catalog
from albert_deploy.placement.place import ModelPlacement, Placement
from albert_deploy.plan.spec import GpuAssignment, Mount, Ref, Service
from albert_deploy.profile.model import HostedModel

HF_TOKEN = Ref("HF_TOKEN", default="")


def key_ref(model_name: str) -> Ref:
    """The .env variable holding a hosted model server's API key."""
    return Ref("MODEL_" + re.sub(r"[^A-Z0-9]+", "_", model_name.upper()).strip("_") + "_KEY")


def model_server(model: HostedModel, placed: ModelPlacement, offline: bool = False) -> Service:
    server = catalog.SERVERS[model.server or ""]
    name = model.name or ""
    command, entrypoint = _COMMANDS[server.name](model, placed, server)
    health = server.health
    if model.health_start_period is not None:
        health = dataclasses.replace(health, start_period_s=model.health_start_period)
    environment: dict[str, object] = {server.api_key_env: key_ref(name), "HF_TOKEN": HF_TOKEN}
    if offline:
        # Never reach the Hub: a missing model fails fast instead of hanging on a download.
        environment.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    environment.update(model.env)
    return Service(
        name=name,
        role="model",
        image=model.image or _image(server, placed),
        command=tuple(command) + tuple(model.args),
        entrypoint=entrypoint,
        environment=environment,  # type: ignore[arg-type]
        ports=(("127.0.0.1", model.port, server.port),) if model.port else (),
        mounts=(Mount(f"{name}-cache", server.cache_path),),
        healthcheck=health,
        gpu=_gpu_for(server, placed),
        user=None,  # every image already runs as its own user
        shm_size="8gb" if server.name == "vllm" else None,
        model=name,
    )


def _gpu_for(server: catalog.Server, placed: ModelPlacement) -> GpuAssignment | None:
    # TEI has no build for GPUs below compute capability 7.5 (V100 and older): it runs its CPU
    # image there, and reserving the GPU would only keep it from others.
    if server.name == "tei" and placed.gpu and _image(server, placed).endswith(f"cpu-{catalog.TEI_VERSION}"):
        return None
    return placed.gpu


def _image(server: catalog.Server, placed: ModelPlacement) -> str:
    if "{variant}" not in server.image:
        return server.image
    return server.image.format(variant=catalog.tei_tag(placed.compute_capability, placed.gpu is not None))


def _vllm(model: HostedModel, placed: ModelPlacement, server: catalog.Server) -> tuple[list[str], None]:
    command = [
        "--model",
        model.model,
        "--served-model-name",
        model.served_name,
        "--host",
        "0.0.0.0",
        "--port",
        str(server.port),
    ]
    if placed.max_model_len:
        command += ["--max-model-len", str(placed.max_model_len)]
    if model.max_num_seqs:
        command += ["--max-num-seqs", str(model.max_num_seqs)]
    if placed.gpu_memory_utilization is not None:
        command += ["--gpu-memory-utilization", f"{placed.gpu_memory_utilization:.2f}"]
    if placed.tensor_parallel_size > 1:
        command += ["--tensor-parallel-size", str(placed.tensor_parallel_size)]
    return command, None


def _tei(model: HostedModel, placed: ModelPlacement, server: catalog.Server) -> tuple[list[str], None]:
    # TEI 1.8 reports --model-id as its name (/info model_id); it has no --served-model-name.
    command = ["--model-id", model.model, "--port", str(server.port)]
    # Its default changed in 1.9: say it, so an image upgrade does not change behaviour.
    command += ["--auto-truncate"]
    return command, None


def _whisper(model: HostedModel, placed: ModelPlacement, server: catalog.Server) -> tuple[list[str], None]:
    # The image has no CMD.
    return ["python3", "app/main.py", "--model", model.model, "--port", str(server.port)], None


_COMMANDS = {"vllm": _vllm, "tei": _tei, "whisper": _whisper}


def one_at_a_time_per_gpu(services: list[Service], placement: Placement) -> list[Service]:
    """Servers sharing a GPU start one after another, largest budget first.

    vLLM measures free memory when it starts, so a neighbour loading at the same moment can make it
    fail; each server waits until the previous one on each of its GPUs is healthy. Servers on
    different GPUs, and CPU services, still start in parallel."""
    previous: dict[str, str] = {}  # device id -> last server placed there
    chained = []
    for service in sorted(services, key=lambda s: (-placement.models[s.model or ""].memory_bytes, s.name)):
        devices = service.gpu.device_ids if service.gpu else ()
        after = tuple(dict.fromkeys(previous[d] for d in devices if d in previous))
        chained.append(dataclasses.replace(service, depends_on=service.depends_on + after))
        previous.update(dict.fromkeys(devices, service.name))
    order = {s.name: i for i, s in enumerate(services)}
    return sorted(chained, key=lambda s: order[s.name])


def start_order(services: tuple[Service, ...] | list[Service]) -> list[dict[str, object]]:
    """Per GPU device id, its servers in the order they start (each once the previous one is healthy).

    Read back from the ``depends_on`` chain that ``one_at_a_time_per_gpu`` wrote; services without
    a device id (CPU, or "any N" GPUs) start as soon as their own dependencies allow."""
    by_name = {s.name: s for s in services}
    devices = sorted({d for s in services if s.gpu for d in s.gpu.device_ids}, key=lambda d: (len(d), d))
    result: list[dict[str, object]] = []
    for device in devices:
        here = [s.name for s in services if s.gpu and device in s.gpu.device_ids]

        def before(name: str, here: list[str] = here) -> int:  # how many on this GPU it waits for, transitively
            seen, todo = set(), list(by_name[name].depends_on)
            while todo:
                dep = todo.pop()
                if dep not in seen and dep in by_name:
                    seen.add(dep)
                    todo.extend(by_name[dep].depends_on)
            return len(seen & set(here))

        result.append({"gpu": device, "services": sorted(here, key=before)})
    return result
