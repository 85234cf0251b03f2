"""What the Kubernetes templates lay out: plain data built from the plan's services."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

GENERATED_SECRET = "generated-secrets"  # written here, kept across renders
OPERATOR_SECRET = "operator-secrets"  # created by the operator: HF_TOKEN, external API keys
CONFIG_MAP = "api-config"
CONFIG_KEY = "config.yml"
MANAGED_BY = "albert-deploy"
STACK_NAME = "albert"  # app.kubernetes.io/name of the objects the whole stack shares


def escape(text: str) -> str:
    """Literal text for a command, args, env value or exec probe: Kubernetes expands ``$(NAME)`` there
    and reads ``$$`` as ``$``, so a ``$`` before ``(`` or ``$`` is doubled; other text is unchanged."""
    return re.sub(r"\$(?=[$(])", "$$", text)


# --- What the templates lay out ------------------------------------------------------------------


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str | None = None  # literal, already escaped
    secret: str | None = None  # or: from this Secret's key
    key: str | None = None
    optional: bool = False


@dataclass(frozen=True)
class Probe:
    period: int
    timeout: int
    failures: int
    http: tuple[int, str] | None = None  # (port, path): httpGet
    command: tuple[str, ...] = ()  # exec


@dataclass(frozen=True)
class Probes:
    startup: Probe
    readiness: Probe
    liveness: Probe


@dataclass(frozen=True)
class VolumeMount:
    name: str
    path: str
    sub_path: str | None = None
    read_only: bool = False


@dataclass(frozen=True)
class Volume:
    name: str
    claim: str | None = None  # a PersistentVolumeClaim
    config_map: str | None = None
    memory: str | None = None  # an emptyDir in memory of this size (/dev/shm); none of the three: an emptyDir


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    command: tuple[str, ...] = ()  # Kubernetes command = compose entrypoint
    args: tuple[str, ...] = ()  # Kubernetes args = compose command
    env: tuple[EnvVar, ...] = ()
    port: tuple[str, int] | None = None  # (name, container port)
    requests: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    mounts: tuple[VolumeMount, ...] = ()
    probes: Probes | None = None
    run_as: tuple[int, int | None] | None = None  # (uid, gid)


@dataclass(frozen=True)
class Claim:
    name: str
    size: str
    storage_class: str | None
    labels: dict[str, str]


@dataclass(frozen=True)
class Workload:
    kind: str  # Deployment or StatefulSet
    name: str
    role: str
    labels: dict[str, str]
    selector: dict[str, str]
    container: Container
    service_port: tuple[str, int, int]  # (name, Service port, container port)
    gpus: int = 0
    strategy: str | None = None  # Deployment only
    init_containers: tuple[Container, ...] = ()
    volumes: tuple[Volume, ...] = ()
    claim: Claim | None = None  # StatefulSet only: its volumeClaimTemplate
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    fs_group: int | None = None
    annotations: dict[str, str] = field(default_factory=dict)
