"""The typed plan + .env -> what ``up`` applies: one :class:`Container` per service, every value resolved.

``up`` never reads the rendered compose.yml back: it resolves the plan's references (``Ref``,
``Joined``) with the .env values, the process environment winning as in compose, and builds its
Docker requests from that. ``tests/test_converge_desired.py`` proves the result equals what Compose
v2 reads from the rendered file for every shipped and test profile.

:meth:`Container.entry` is the service's compose entry (as compose.yml holds it, interpolated, bind
sources made absolute): its canonical JSON is the config hash and its keys are the ``parts``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from albert_deploy.catalog import HealthCheck
from albert_deploy.plan.build import Plan
from albert_deploy.plan.spec import GpuAssignment, Joined, Ref, Service, Value

# Bump when the canonical form changes: every container is then recreated once, on purpose.
HASH_SCHEME = "1"
RESTART = "unless-stopped"  # what compose.yml.j2 writes for every service
HEALTHY = "service_healthy"


@dataclass(frozen=True)
class Port:
    host_ip: str
    published: int
    target: int


@dataclass(frozen=True)
class Mount:
    kind: str  # "bind" or "volume"
    source: str  # bind: absolute host path; volume: the volume's name in the profile
    target: str
    read_only: bool


@dataclass(frozen=True)
class Container:
    """One service as ``up`` creates it."""

    service: str
    image: str
    command: tuple[str, ...] | None
    entrypoint: tuple[str, ...] | None
    environment: Mapping[str, str]
    ports: tuple[Port, ...]
    mounts: tuple[Mount, ...]
    healthcheck: HealthCheck | None
    gpu: GpuAssignment | None  # None also when ``--no-gpus`` dropped it (see ``no_gpus``)
    shm_size: str | None
    user: str | None
    depends_on: Mapping[str, str]  # service -> condition
    cap_drop: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    mem_limit: int | None = None  # bytes
    restart: str = RESTART
    no_gpus: bool = False  # started without the GPUs the profile gives it
    probes_once: tuple[str, ...] = ()  # not part of the entry: see Service.probes_once
    waits_inside: tuple[str, ...] = ()  # nor these two: see Service.waits_inside
    wait_s: int = 0

    def entry(self) -> dict[str, Any]:
        """The compose service entry, key for key as compose.yml.j2 writes it."""
        e: dict[str, Any] = {"image": self.image, "restart": self.restart}
        optional = {
            "entrypoint": list(self.entrypoint) if self.entrypoint is not None else None,
            "command": list(self.command) if self.command else None,
            "user": self.user or None,
            "environment": dict(self.environment) or None,
            "shm_size": self.shm_size or None,
            "security_opt": list(self.security_opt) or None,
            "cap_drop": list(self.cap_drop) or None,
            "cap_add": list(self.cap_add) or None,
            "mem_limit": self.mem_limit or None,
        }
        e.update({k: v for k, v in optional.items() if v is not None})
        if self.ports:
            e["ports"] = [
                {"target": p.target, "published": str(p.published), "host_ip": p.host_ip, "protocol": "tcp"}
                for p in self.ports
            ]
        mounts = [
            {"type": m.kind, "source": m.source, "target": m.target, "read_only": m.read_only} for m in self.mounts
        ]
        e["volumes"] = mounts or None
        if self.healthcheck:
            h = self.healthcheck
            e["healthcheck"] = {
                "test": list(h.test), "interval": f"{h.interval_s}s", "timeout": f"{h.timeout_s}s",
                "retries": h.retries, "start_period": f"{h.start_period_s}s",
            }  # fmt: skip
        if self.gpu:
            device: dict[str, Any] = {"driver": "nvidia", "capabilities": ["gpu"]}
            if self.gpu.device_ids:
                device["device_ids"] = list(self.gpu.device_ids)
            else:
                device["count"] = self.gpu.count
            e["deploy"] = {"resources": {"reservations": {"devices": [device]}}}
        if self.no_gpus:
            e["x-no-gpus"] = True  # part of the hash: a GPU-less container is not the one the profile wants
        if self.depends_on:
            e["depends_on"] = {name: {"condition": c} for name, c in self.depends_on.items()}
        return e

    @property
    def binds(self) -> tuple[Mount, ...]:
        return tuple(m for m in self.mounts if m.kind == "bind")


@dataclass(frozen=True)
class Project:
    """The stack as ``up`` applies it. ``services`` keep the plan's order (start order ties)."""

    name: str
    working_dir: str  # absolute; relative bind sources are resolved against it
    config_file: str  # absolute path of compose.yml
    services: dict[str, Container]
    volumes: tuple[str, ...]
    files: dict[str, bytes] = field(default_factory=dict, compare=False)  # bind source -> content, for hashing


def resolve(value: Value, env: Mapping[str, str]) -> str:
    """A plan value with its references filled: ``${NAME}`` (unset: empty, as compose) or ``${NAME:-default}``."""
    if isinstance(value, Ref):
        found = env.get(value.name, "")
        return value.default if value.default is not None and not found else found
    if isinstance(value, Joined):
        return "".join(resolve(p, env) for p in value.parts)
    return value


def _bind_source(volume: str, working_dir: Path) -> str:
    return volume if os.path.isabs(volume) else str((working_dir / volume).resolve())


def container(service: Service, env: Mapping[str, str], working_dir: Path) -> Container:
    mounts = tuple(
        Mount("bind" if m.is_bind else "volume", _bind_source(m.volume, working_dir) if m.is_bind else m.volume,
              m.target, m.read_only)
        for m in service.mounts
    )  # fmt: skip
    return Container(
        service=service.name,
        image=service.image,
        command=tuple(service.compose_command or service.command) or None,
        entrypoint=service.compose_entrypoint or service.entrypoint,
        environment={k: resolve(v, env) for k, v in service.environment.items()},
        ports=tuple(Port(host, published, target) for host, published, target in service.ports),
        mounts=mounts,
        healthcheck=service.compose_healthcheck,
        gpu=service.gpu,
        shm_size=service.shm_size,
        user=service.compose_user or service.user,
        depends_on=dict.fromkeys(service.depends_on, HEALTHY),
        cap_drop=service.cap_drop,
        cap_add=service.cap_add,
        security_opt=service.security_opt,
        mem_limit=int(service.mem_limit) if service.mem_limit else None,
        probes_once=service.probes_once,
        waits_inside=service.waits_inside,
        wait_s=service.wait_s,
    )


def project(
    plan: Plan, working_dir: Path, env: Mapping[str, str], files: Mapping[str, bytes], no_gpus: bool = False
) -> Project:
    """``env``: the .env values; the process environment overrides them, as in compose.
    ``files``: rendered bind-mounted files by name (``plan`` renders in memory), else read from disk."""
    working_dir = working_dir.resolve()
    values = {**env, **os.environ}
    services = {s.name: container(s, values, working_dir) for s in plan.services}
    if no_gpus:
        services = {n: replace(c, gpu=None, no_gpus=True) if c.gpu else c for n, c in services.items()}
    contents = {}
    for s in plan.services:
        for m in s.mounts:
            if m.is_bind:
                key = m.volume.removeprefix("./")
                source = _bind_source(m.volume, working_dir)
                contents[source] = files[key] if key in files else _read(Path(source))
    return Project(
        name=plan.project,
        working_dir=str(working_dir),
        config_file=str(working_dir / "compose.yml"),
        services=services,
        volumes=tuple(plan.volumes),
        files=contents,
    )


def _read(source: Path) -> bytes:
    try:
        return source.read_bytes() if source.is_file() else b""
    except OSError:
        return b""


def config_hash(project: Project, service: str) -> str:
    """What defines the container: its service entry and its bind-mounted files.

    Written into ``com.docker.compose.config-hash``: a changed config.yml recreates the API."""
    spec = project.services[service]
    digest = hashlib.sha256()
    digest.update(f"albert-deploy-hash/{HASH_SCHEME}\n".encode())
    digest.update(json.dumps(spec.entry(), sort_keys=True, separators=(",", ":"), default=str).encode())
    for mount in spec.binds:
        digest.update(b"\n" + mount.source.encode() + b"\n")
        digest.update(hashlib.sha256(project.files.get(mount.source, b"")).digest())
    return digest.hexdigest()
