"""Plain data passed between stages: what to run (services) and what the API must know (endpoints).

Every string here is literal. The one exception is :class:`Ref`, a value taken from ``.env`` or
the operator's environment at start time; renderers write it as ``${NAME}`` and escape the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Union

from albert_deploy.catalog import HealthCheck
from albert_deploy.placement.gpus import GpuAssignment, gpus_text
from albert_deploy.sizes import Size

__all__ = [
    "Endpoint", "GpuAssignment", "GpuStartOrder", "Joined", "ModelCache", "Mount", "Ref", "Service", "Value",
    "gpus_text", "reachable_host",
]  # fmt: skip


@dataclass(frozen=True)
class Ref:
    """``${name}`` (or ``${name:-default}``), filled from ``.env`` or the environment."""

    name: str
    default: str | None = None

    def __str__(self) -> str:
        return f"${{{self.name}}}" if self.default is None else f"${{{self.name}:-{self.default}}}"


@dataclass(frozen=True)
class Joined:
    """Literal text and references side by side, e.g. ``--requirepass ${REDIS_PASSWORD}``."""

    parts: tuple[str | Ref, ...]


Value = Union[str, Ref, Joined]


@dataclass(frozen=True)
class Mount:
    volume: str  # named volume, or an absolute/relative host path for bind mounts
    target: str
    read_only: bool = False

    @property
    def is_bind(self) -> bool:
        return self.volume.startswith(("/", "./"))


@dataclass(frozen=True)
class Service:
    """One container of the stack."""

    name: str
    role: str  # "database", "model" or "api"
    image: str
    command: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    environment: dict[str, Value] = field(default_factory=dict)
    ports: tuple[tuple[str, int, int], ...] = ()  # (host address, host port, container port)
    mounts: tuple[Mount, ...] = ()
    healthcheck: HealthCheck | None = None
    depends_on: tuple[str, ...] = ()  # started only once these are healthy
    gpu: GpuAssignment | None = None
    user: str | None = None
    shm_size: str | None = None  # `shm`, as Docker writes it
    model: str | None = None  # the profile model this server runs
    server: str | None = None  # model servers: vllm, tei or whisper
    container_port: int | None = None  # the port it listens on inside its container
    runs_on_cpu: bool = False  # a model server running its CPU build (TEI off GPU or on GPUs it has no build for)
    # A model server's command when it owns its GPUs (no share of a GPU to pass); None: `command`.
    command_whole_gpus: tuple[str, ...] | None = None
    shm: Size | None = None  # size of /dev/shm
    # Hardening: every capability dropped but those the image needs; no privilege gain at execve.
    cap_drop: tuple[str, ...] = ("ALL",)
    cap_add: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ("no-new-privileges:true",)
    mem_limit: Size | None = None  # host memory (RAM) the container may use
    # Compose and `up` only (Kubernetes gives volumes to the pod's fsGroup instead): the user the
    # container starts as and the command it starts with, in place of `user` and `command`.
    compose_user: str | None = None
    compose_command: tuple[str, ...] | None = None
    compose_entrypoint: tuple[str, ...] | None = None  # likewise for `entrypoint` (plan/startup.py)
    # Services it asks only once, when it starts (the API probes its models): `up` restarts it
    # after it (re)starts one of them.
    probes_once: tuple[str, ...] = ()
    # Compose and `up` only: the services its own command waits for until they answer, before it
    # starts, and for at most `wait_s` seconds (plan/startup.py). So `up` may start it before they
    # are healthy, and Docker's start period is longer by `wait_s` (`compose_healthcheck`).
    waits_inside: tuple[str, ...] = ()
    wait_s: int = 0

    @property
    def compose_healthcheck(self) -> HealthCheck | None:
        """The health check compose and `up` give Docker: failures while the command still waits
        for the services it needs are not the service's own, so they fall in the start period."""
        if self.healthcheck is None or not self.wait_s:
            return self.healthcheck
        return replace(self.healthcheck, start_period_s=self.healthcheck.start_period_s + self.wait_s)


@dataclass(frozen=True)
class ModelCache:
    """One hosted model's weights: which volume, where its server reads them (for pull, bundle, offline)."""

    service: str
    model_id: str  # Hugging Face id
    image: str  # the server's image (cache checks run in it)
    volume: str  # compose volume key, e.g. "guillaumetell-7b-cache"
    mount: str  # where the server mounts the volume
    hub_cache: str  # where the server looks for models--org--name/
    user: str  # uid the server runs as ("" for root)

    @property
    def model_dir(self) -> str:
        return f"{self.hub_cache}/models--{self.model_id.replace('/', '--')}"


@dataclass(frozen=True)
class GpuStartOrder:
    """The servers of one GPU in start steps: the servers of a step load together, once every
    server of the previous step is healthy (see plan/order.py)."""

    gpu: str  # device id
    steps: tuple[tuple[str, ...], ...]

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(name for step in self.steps for name in step)

    def text(self, arrow: str) -> str:
        """Servers of one step joined by ``+`` (they load together), steps by ``arrow``."""
        return arrow.join(" + ".join(step) for step in self.steps)


def reachable_host(host: str) -> str:
    """The host part of a URL that reaches, from this host, a port bound to ``host``: a bind to
    every interface (0.0.0.0, ::) is reached through loopback; an IPv6 address is bracketed."""
    bare = host.strip("[]")
    if bare in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{bare}]" if ":" in bare else bare


@dataclass(frozen=True)
class Endpoint:
    """A model as the API config sees it, hosted here or external."""

    name: str  # the profile's name: API id or alias
    type: str
    served_name: str  # what the server reports
    url: str  # server root, without /v1
    key: Ref | None
    client: str  # 0.1+ client type: vllm, tei, openai or albert
    hosted: bool
    port: int | None = None  # hosted: the server's port, so a target can name the host its own way

    def at_host(self, host: str) -> str:
        """A hosted endpoint's URL with another host name (e.g. its Kubernetes Service)."""
        return server_url(host, self.port or 0)


def server_url(host: str, port: int) -> str:
    """A model server's root URL inside the deployment's network (without /v1)."""
    return f"http://{host}:{port}"
