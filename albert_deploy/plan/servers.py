"""Model servers as services: the catalog's facts plus a model and its placement."""

from __future__ import annotations

import dataclasses

from albert_deploy import catalog
from albert_deploy.placement.place import ModelPlacement
from albert_deploy.plan.spec import GpuAssignment, ModelCache, Mount, Ref, Service
from albert_deploy.profile.managed import key_variable
from albert_deploy.profile.model import HostedModel
from albert_deploy.sizes import Size

HF_TOKEN = Ref("HF_TOKEN", default="")
VLLM_SHM = Size(8 * 2**30)  # tensor-parallel workers talk through /dev/shm
GIB = 2**30

# whisper: runs first as root (with CHOWN, SETUID, SETGID only) to give its model cache to its own
# uid, whatever created the volume (Docker makes a missing mount target root's), then drops to that
# uid and runs the server. argv: uid, home, cache, then the server's command.
OWN_CACHE_THEN_DROP = """import os, sys
uid, home, cache, command = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
if os.getuid() == 0:
    for root, _, files in os.walk(cache):
        for path in [root, *(os.path.join(root, name) for name in files)]:
            if os.lstat(path).st_uid != uid:
                os.lchown(path, uid, uid)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    os.environ["HOME"] = home
os.execvp(command[0], command)
"""


def key_ref(model_name: str) -> Ref:
    """The .env variable holding a hosted model server's API key."""
    return Ref(key_variable(model_name))


def model_server(model: HostedModel, placed: ModelPlacement, offline: bool = False, group: str = "") -> Service:
    """``group``: for a replica (plan/replicas.py), the model's name: its key and weights are the model's."""
    server = catalog.SERVERS[model.server or ""]
    name = model.name or ""
    group = group or name
    command, entrypoint = _COMMANDS[server.name](model, placed, server)
    # Kubernetes gives each server whole GPUs: the same flags without the share of a GPU.
    whole_gpus = _vllm(model, placed, server, gpu_share=False)[0] if server.name == "vllm" else None
    health = server.health
    if model.health_start_period is not None:
        health = dataclasses.replace(health, start_period_s=model.health_start_period)
    environment: dict[str, object] = {server.api_key_env: key_ref(group), "HF_TOKEN": HF_TOKEN}
    if offline:
        # Never reach the Hub: a missing model fails fast instead of hanging on a download.
        environment.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    environment.update(model.env)
    # whisper starts as root to give its cache to its own user, then drops to it (OWN_CACHE_THEN_DROP).
    owns_cache = server.name == "whisper"
    run = tuple(command) + tuple(model.args)
    return Service(
        name=name,
        role="model",
        image=model.image or _image(server, placed),
        command=run,
        compose_command=(*_own_cache(server), *run) if owns_cache else None,
        compose_user="0" if owns_cache else None,
        command_whole_gpus=None if whole_gpus is None else tuple(whole_gpus) + tuple(model.args),
        entrypoint=entrypoint,
        environment=environment,  # type: ignore[arg-type]
        ports=(("127.0.0.1", model.port, server.port),) if model.port else (),
        mounts=(Mount(f"{group}-cache", server.cache_path),),
        healthcheck=health,
        gpu=_gpu_for(server, placed),
        user=None,  # every image already runs as its own user
        cap_add=server.cap_add,
        mem_limit=host_memory(model, placed, server),
        shm_size=VLLM_SHM.docker() if server.name == "vllm" else None,
        shm=VLLM_SHM if server.name == "vllm" else None,
        model=group,
        server=server.name,
        container_port=server.port,
        runs_on_cpu=_runs_on_cpu(server, placed),
    )


def model_cache(model: HostedModel, service: Service) -> ModelCache:
    """Where ``service`` (the model's server, as it runs) reads the weights: for `pull`, `bundle` and
    the offline check."""
    server = catalog.SERVERS[service.server or ""]
    (cache,) = service.mounts
    return ModelCache(service.name, model.model, service.image, cache.volume, cache.target, server.hub_cache,
                      server.user or "")  # fmt: skip


def host_memory(model: HostedModel, placed: ModelPlacement, server: catalog.Server) -> Size:
    """The server's memory limit: its weights (they pass through host memory while loading), the
    server's runtime overhead per GPU worker, and on CPU the model's activations; whole GiB."""
    known = model.known
    if model.memory is not None:
        weights = int(model.memory)
    elif known is not None:
        weights = int(known.params_b * 1e9 * server.bytes_per_param.get(known.dtype, 2))
    else:  # neither known nor given: its GPU budget bounds the weights
        weights = placed.memory_bytes * max(1, placed.tensor_parallel_size)
    total = weights + server.host_overhead_gib * GIB * max(1, placed.tensor_parallel_size)
    if _runs_on_cpu(server, placed):
        total += int((known.runtime_gib if known else 1.0) * GIB)
    return Size(-(-total // GIB) * GIB)


def _runs_on_cpu(server: catalog.Server, placed: ModelPlacement) -> bool:
    return placed.gpu is None or (
        server.name == "tei" and catalog.tei_runs_on_cpu(placed.compute_capability, on_gpu=True)
    )


def _gpu_for(server: catalog.Server, placed: ModelPlacement) -> GpuAssignment | None:
    # TEI has no build for GPUs below compute capability 7.5 (V100 and older): it runs its CPU
    # image there, and reserving the GPU would only keep it from others.
    return None if _runs_on_cpu(server, placed) else placed.gpu


def _image(server: catalog.Server, placed: ModelPlacement) -> str:
    if "{variant}" not in server.image:
        return server.image
    return server.image.format(variant=catalog.tei_tag(placed.compute_capability, placed.gpu is not None))


def _vllm(
    model: HostedModel, placed: ModelPlacement, server: catalog.Server, gpu_share: bool = True
) -> tuple[list[str], None]:
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
    if gpu_share:
        command += _gpu_share(placed)
    if placed.tensor_parallel_size > 1:
        command += ["--tensor-parallel-size", str(placed.tensor_parallel_size)]
    return command, None


def _gpu_share(placed: ModelPlacement) -> list[str]:
    # The share of each GPU the placement gives it (where models share GPUs).
    if placed.gpu_memory_utilization is None:
        return []
    return ["--gpu-memory-utilization", f"{placed.gpu_memory_utilization:.2f}"]


def _tei(model: HostedModel, placed: ModelPlacement, server: catalog.Server) -> tuple[list[str], None]:
    # TEI 1.8 reports --model-id as its name (/info model_id); it has no --served-model-name.
    command = ["--model-id", model.model, "--port", str(server.port)]
    # Its default changed in 1.9: say it, so an image upgrade does not change behaviour.
    command += ["--auto-truncate"]
    return command, None


def _whisper(model: HostedModel, placed: ModelPlacement, server: catalog.Server) -> tuple[list[str], None]:
    # The image has no CMD.
    return ["python3", "app/main.py", "--model", model.model, "--port", str(server.port)], None


def _own_cache(server: catalog.Server) -> tuple[str, ...]:
    return ("python3", "-c", OWN_CACHE_THEN_DROP, server.user or "0", WHISPER_HOME, server.cache_path)


WHISPER_HOME = "/home/whisper"  # the user's home and WORKDIR (app/Dockerfile:12-16)


_COMMANDS = {"vllm": _vllm, "tei": _tei, "whisper": _whisper}
