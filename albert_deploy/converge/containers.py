"""A resolved :class:`~albert_deploy.converge.desired.Container` -> the Docker Engine API's create request.

Pure translation (labels, host config, health check, GPU device requests); ``runner`` sends it.
Names and labels are Docker Compose's own, so ``docker compose ps/logs/down`` see our containers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from docker.utils import parse_bytes

from albert_deploy import __version__
from albert_deploy.catalog import HealthCheck
from albert_deploy.converge.desired import Container, Mount, Port, Project
from albert_deploy.converge.labels import CONFIG_HASH as CONFIG_HASH
from albert_deploy.converge.labels import ONEOFF as ONEOFF
from albert_deploy.converge.labels import PROJECT as PROJECT
from albert_deploy.converge.labels import SERVICE as SERVICE

NUMBER = "com.docker.compose.container-number"
VERSION = "com.docker.compose.version"
WORKING_DIR = "com.docker.compose.project.working_dir"
CONFIG_FILES = "com.docker.compose.project.config_files"
DEPENDS_ON = "com.docker.compose.depends_on"
IMAGE = "com.docker.compose.image"
NETWORK = "com.docker.compose.network"
VOLUME = "com.docker.compose.volume"
# Ours: present only on containers albert-deploy created, whose config hash it can compare.
OURS = "io.albert-deploy.version"
PARTS = "io.albert-deploy.parts"
GPUS_DROPPED = "io.albert-deploy.gpus-dropped"

STOP_TIMEOUT_S = 10  # compose's default grace period


def container_name(project: str, service: str) -> str:
    return f"{project}-{service}-1"


def network_name(project: str) -> str:
    return f"{project}_default"


def volume_name(project: str, volume: str) -> str:
    return f"{project}_{volume}"


def labels(project: Project, service: str, config_hash: str, parts: str, image_id: str) -> dict[str, str]:
    spec = project.services[service]
    result = {
        PROJECT: project.name,
        SERVICE: service,
        ONEOFF: "False",
        NUMBER: "1",
        CONFIG_HASH: config_hash,
        VERSION: __version__,
        WORKING_DIR: project.working_dir,
        CONFIG_FILES: project.config_file,
        DEPENDS_ON: ",".join(f"{name}:{condition}:false" for name, condition in spec.depends_on.items()),
        IMAGE: image_id,
        OURS: __version__,
        PARTS: parts,
    }
    if spec.no_gpus:
        result[GPUS_DROPPED] = "true"
    return result


def create_request(
    project: Project, service: str, container_labels: Mapping[str, str], image: str | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``APIClient.create_container``; ``image``: what to run instead of the
    service's reference (its locked image id, when only that is present: see ``images.local_images``)."""
    spec = project.services[service]
    network = network_name(project.name)
    name = container_name(project.name, service)
    ports, bindings = port_bindings(spec.ports)
    host_config: dict[str, Any] = {
        "NetworkMode": network,
        "RestartPolicy": _restart(spec.restart),
        "Mounts": [_mount(project.name, m) for m in spec.mounts],
        "PortBindings": bindings,
        "DeviceRequests": device_requests(spec),
    }
    if spec.shm_size:
        host_config["ShmSize"] = parse_bytes(spec.shm_size)
    # Hardening, as compose sends it: capabilities, no privilege gain, the memory limit.
    optional = {"CapDrop": list(spec.cap_drop), "CapAdd": list(spec.cap_add), "SecurityOpt": list(spec.security_opt)}
    host_config.update({key: value for key, value in optional.items() if value})
    if spec.mem_limit:
        host_config["Memory"] = spec.mem_limit
    request: dict[str, Any] = {
        "image": image or spec.image,
        "name": name,
        "labels": dict(container_labels),
        "environment": [f"{k}={v}" for k, v in spec.environment.items()],
        "host_config": host_config,
        "networking_config": {"EndpointsConfig": {network: {"Aliases": [service, name]}}},
        "ports": ports,
        "detach": True,
        "use_config_proxy": False,  # the container gets exactly the file's environment
        "stop_timeout": STOP_TIMEOUT_S,
    }
    if spec.command is not None:
        request["command"] = list(spec.command)
    if spec.entrypoint is not None:
        request["entrypoint"] = list(spec.entrypoint)
    if spec.user:
        request["user"] = spec.user
    if spec.healthcheck:
        request["healthcheck"] = healthcheck(spec.healthcheck)
    return request


def device_requests(spec: Container) -> list[Any]:
    """The service's GPUs -> ``docker.types.DeviceRequest``s (none once ``--no-gpus`` dropped them)."""
    from docker.types import DeviceRequest

    gpu = spec.gpu
    if gpu is None:
        return []
    if gpu.device_ids:
        return [DeviceRequest(driver="nvidia", device_ids=list(gpu.device_ids), capabilities=[["gpu"]])]
    return [DeviceRequest(driver="nvidia", count=-1 if gpu.count is None else gpu.count, capabilities=[["gpu"]])]


def healthcheck(check: HealthCheck) -> dict[str, Any]:
    return {
        "test": list(check.test),
        "interval": int(check.interval_s * 1e9),
        "timeout": int(check.timeout_s * 1e9),
        "retries": check.retries,
        "start_period": int(check.start_period_s * 1e9),
    }


def port_bindings(entries: tuple[Port, ...]) -> tuple[list[tuple[int, str]], dict[str, list[dict[str, str]]]]:
    exposed: list[tuple[int, str]] = []
    bindings: dict[str, list[dict[str, str]]] = {}
    for entry in entries:
        exposed.append((entry.target, "tcp"))
        bindings.setdefault(f"{entry.target}/tcp", []).append(
            {"HostIp": entry.host_ip, "HostPort": str(entry.published)}
        )
    return exposed, bindings


def _mount(project: str, mount: Mount) -> dict[str, Any]:
    source = volume_name(project, mount.source) if mount.kind == "volume" else mount.source
    return {"Type": mount.kind, "Source": source, "Target": mount.target, "ReadOnly": mount.read_only}


def _restart(policy: str | None) -> dict[str, Any]:
    if not policy or policy == "no":
        return {"Name": ""}
    name, _, retries = policy.partition(":")
    return {"Name": name, "MaximumRetryCount": int(retries)} if retries else {"Name": name}
