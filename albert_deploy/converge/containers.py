"""An interpolated compose service -> the Docker Engine API's container create request.

Pure translation (labels, host config, health check, GPU device requests); ``stack`` sends it.
Names and labels are Docker Compose's own, so ``docker compose ps/logs/down`` see our containers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from albert_deploy import __version__
from albert_deploy.converge import composefile

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
ONEOFF = "com.docker.compose.oneoff"
NUMBER = "com.docker.compose.container-number"
CONFIG_HASH = "com.docker.compose.config-hash"
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


def labels(project: composefile.Project, service: str, config_hash: str, parts: str, image_id: str) -> dict[str, str]:
    spec = project.services[service]
    deps = composefile.depends_on(spec)
    result = {
        PROJECT: project.name,
        SERVICE: service,
        ONEOFF: "False",
        NUMBER: "1",
        CONFIG_HASH: config_hash,
        VERSION: __version__,
        WORKING_DIR: project.working_dir,
        CONFIG_FILES: project.config_file,
        DEPENDS_ON: ",".join(f"{name}:{condition}:false" for name, condition in deps.items()),
        IMAGE: image_id,
        OURS: __version__,
        PARTS: parts,
    }
    if spec.get("x-no-gpus"):
        result[GPUS_DROPPED] = "true"
    return result


def create_request(
    project: composefile.Project, service: str, container_labels: Mapping[str, str], image: str | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``APIClient.create_container``; ``image``: what to run instead of the
    service's reference (its locked image id, when only that is present: see ``images.local_images``)."""
    spec = project.services[service]
    network = network_name(project.name)
    name = container_name(project.name, service)
    ports, bindings = _ports(spec.get("ports") or [])
    host_config: dict[str, Any] = {
        "NetworkMode": network,
        "RestartPolicy": _restart(spec.get("restart")),
        "Mounts": [_mount(project.name, m) for m in spec.get("volumes") or []],
        "PortBindings": bindings,
        "DeviceRequests": device_requests(spec),
    }
    if spec.get("shm_size"):
        host_config["ShmSize"] = parse_size(spec["shm_size"])
    request: dict[str, Any] = {
        "image": image or spec["image"],
        "name": name,
        "labels": dict(container_labels),
        "environment": [f"{k}={'' if v is None else v}" for k, v in (spec.get("environment") or {}).items()],
        "host_config": host_config,
        "networking_config": {"EndpointsConfig": {network: {"Aliases": [service, name]}}},
        "ports": ports,
        "detach": True,
        "use_config_proxy": False,  # the container gets exactly the file's environment
        "stop_timeout": STOP_TIMEOUT_S,
    }
    for key in ("command", "entrypoint"):
        if spec.get(key) is not None:
            value = spec[key]
            request[key] = value if isinstance(value, list) else ["/bin/sh", "-c", value]
    if spec.get("user"):
        request["user"] = str(spec["user"])
    if spec.get("healthcheck"):
        request["healthcheck"] = healthcheck(spec["healthcheck"])
    return request


def device_requests(spec: Mapping[str, Any]) -> list[Any]:
    """compose ``deploy.resources.reservations.devices`` -> ``docker.types.DeviceRequest``s."""
    from docker.types import DeviceRequest

    result = []
    for device in composefile.gpu_devices(spec):
        ids = [str(i) for i in device.get("device_ids") or []]
        count = device.get("count")
        if ids:
            result.append(DeviceRequest(driver=device.get("driver", "nvidia"), device_ids=ids, capabilities=[["gpu"]]))
        else:
            n = -1 if count in (None, "all") else int(count)
            result.append(DeviceRequest(driver=device.get("driver", "nvidia"), count=n, capabilities=[["gpu"]]))
    return result


def healthcheck(check: Mapping[str, Any]) -> dict[str, Any]:
    if check.get("disable"):
        return {"test": ["NONE"]}
    test = check.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]

    def ns(key: str, default: float) -> int:
        return int(composefile.duration_seconds(check.get(key), default) * 1e9)

    return {
        "test": test,
        "interval": ns("interval", 30),
        "timeout": ns("timeout", 30),
        "retries": int(check.get("retries", 3)),
        "start_period": ns("start_period", 0),
    }


def _ports(entries: list[Any]) -> tuple[list[tuple[int, str]], dict[str, list[dict[str, str]]]]:
    exposed: list[tuple[int, str]] = []
    bindings: dict[str, list[dict[str, str]]] = {}
    for entry in entries:
        target, protocol = int(entry["target"]), entry.get("protocol", "tcp")
        exposed.append((target, protocol))
        bindings.setdefault(f"{target}/{protocol}", []).append(
            {"HostIp": str(entry.get("host_ip", "")), "HostPort": str(entry.get("published", ""))}
        )
    return exposed, bindings


def _mount(project: str, mount: Mapping[str, Any]) -> dict[str, Any]:
    kind = mount.get("type", "volume")
    source = volume_name(project, mount["source"]) if kind == "volume" else mount["source"]
    return {"Type": kind, "Source": source, "Target": mount["target"], "ReadOnly": bool(mount.get("read_only"))}


def _restart(policy: str | None) -> dict[str, Any]:
    if not policy or policy == "no":
        return {"Name": ""}
    name, _, retries = policy.partition(":")
    return {"Name": name, "MaximumRetryCount": int(retries)} if retries else {"Name": name}


def parse_size(value: Any) -> int:
    """compose sizes: ``8gb``, ``512m``, or bytes."""
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip().lower().removesuffix("b")
    units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(float(text))
