"""Desired services vs the containers that exist -> what ``up`` must do. Pure: no Docker here.

The comparison is the one ``docker compose up`` makes: the config hash label, the image id, and
the container's state. Containers whose hash is Docker Compose's own (started by
``docker compose up``) cannot be compared by hash: they are recreated once, with that reason.
"""

from __future__ import annotations

import graphlib
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from albert_deploy.converge.desired import Container, Project
from albert_deploy.errors import DeployError, DockerError

CREATE, RECREATE, START, NOTHING, REMOVE = "create", "recreate", "start", "nothing", "remove"
# Margin over the health check's own verdict (start period + failed retries) before giving up.
TIMEOUT_MARGIN_S = 30.0
NO_HEALTHCHECK_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Actual:
    """A container of the project, as the daemon lists it."""

    id: str
    name: str
    service: str
    number: int
    state: str  # running, exited, created, restarting, dead, paused, removing
    health: str | None  # healthy, unhealthy, starting; None without a health check
    config_hash: str
    ours: bool  # created by albert-deploy: its hash and parts are comparable
    image_id: str = ""
    parts: Mapping[str, str] = field(default_factory=dict)  # key -> short hash, see service_parts
    gpus_dropped: bool = False  # started with `up --no-gpus`


@dataclass(frozen=True)
class Desired:
    service: str
    config_hash: str
    parts: Mapping[str, str]
    image: str
    image_id: str | None  # None: not present locally
    depends_on: Mapping[str, str]
    probes_once: tuple[str, ...] = ()  # recreated after one of these is (re)started: see Service


@dataclass(frozen=True)
class Action:
    service: str
    kind: str
    reason: str = ""
    container: str | None = None  # the container acted on (or replaced)
    duplicates: tuple[str, ...] = ()  # further containers of the service, removed

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "action": self.kind, "reason": self.reason}


def service_parts(project: Project, service: str) -> dict[str, str]:
    """A short hash per top-level key and per bind-mounted file, so a recreate can say why."""
    spec = project.services[service]
    parts = {key: _short(json.dumps(value, sort_keys=True, default=str)) for key, value in spec.entry().items()}
    for mount in spec.binds:
        parts["file:" + mount.source.rsplit("/", 1)[-1]] = _short(project.files.get(mount.source, b""))
    return parts


def encode_parts(parts: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(parts.items()))


def decode_parts(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if "=" in item)


def _short(value: str | bytes) -> str:
    data = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()[:8]


def why_different(desired: Desired, actual: Actual) -> str:
    """The reason a container no longer matches, or "" when it does."""
    if not actual.ours:
        return "started by docker compose (its config hash is not albert-deploy's)"
    if actual.config_hash != desired.config_hash:
        keys = sorted(set(desired.parts) | set(actual.parts))
        changed = [_label(k) for k in keys if desired.parts.get(k) != actual.parts.get(k)]
        if "x-no-gpus" in changed:  # say it in the operator's words, not as two raw keys
            changed = [c for c in changed if c not in ("x-no-gpus", "deploy")]
            changed.append(
                "--no-gpus drops its GPUs"
                if "x-no-gpus" in desired.parts
                else "started with --no-gpus, without its GPUs"
            )
        return "changed: " + ", ".join(changed) if changed else "config changed"
    if desired.image_id is None:
        return f"image {desired.image} is not present locally (it will be pulled)"
    if actual.image_id and actual.image_id != desired.image_id:
        return f"image {desired.image} has changed"
    return ""


def _label(key: str) -> str:
    return key.removeprefix("file:") if key.startswith("file:") else key


def plan_actions(desired: Iterable[Desired], actual: Iterable[Actual]) -> list[Action]:
    """One action per desired service (file order), then removals of services no longer wanted."""
    by_service: dict[str, list[Actual]] = {}
    for container in actual:
        by_service.setdefault(container.service, []).append(container)
    actions: list[Action] = []
    wanted = set()
    desired = list(desired)
    for want in desired:
        wanted.add(want.service)
        containers = sorted(by_service.get(want.service, []), key=_keep_first)
        if not containers:
            actions.append(Action(want.service, CREATE, "not running"))
            continue
        keep, extra = containers[0], tuple(c.id for c in containers[1:])
        actions.append(_action_for(want, keep, extra))
    for service in sorted(set(by_service) - wanted):
        for container in by_service[service]:
            actions.append(Action(service, REMOVE, "no longer in the profile", container.id))
    return _reprobe(desired, actions)


def _reprobe(desired: list[Desired], actions: list[Action]) -> list[Action]:
    """A running API that probes its models only at start (etalab-ia/albert-api@0.2.0
    app/utils/lifespan.py:36-55) would never serve a model whose server ``up`` (re)starts: it is
    recreated too, and so starts after that server is healthy and probes it again."""
    kinds = {a.service: a.kind for a in actions}
    result = []
    for action, want in zip(actions, desired, strict=False):  # one action per desired service, in order, then removals
        changed = [s for s in want.probes_once if kinds.get(s) in (CREATE, RECREATE, START)]
        if action.kind == NOTHING and changed:
            reason = f"probes its models only at start: {', '.join(changed)} (re)started"
            action = Action(action.service, RECREATE, reason, action.container, action.duplicates)
        result.append(action)
    return result + actions[len(desired) :]


def _keep_first(container: Actual) -> tuple[int, int, str]:
    # Keep the running container numbered 1; any other is a duplicate.
    return (container.state != "running", container.number != 1, container.id)


def _action_for(want: Desired, have: Actual, extra: tuple[str, ...]) -> Action:
    reason = why_different(want, have)
    if reason or have.state in ("dead", "removing"):
        return Action(want.service, RECREATE, reason or f"container is {have.state}", have.id, extra)
    if have.state in ("exited", "created", "paused"):
        why = {"exited": "container exited", "created": "created but never started", "paused": "container is paused"}
        return Action(want.service, START, why[have.state], have.id, extra)
    return Action(want.service, NOTHING, "", have.id, extra)


def start_order(dependencies: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Services in waves: each wave depends only on earlier ones (file order within a wave).
    Refuses unknown names and cycles."""
    for service, deps in dependencies.items():
        for dep in deps:
            if dep not in dependencies:
                raise DockerError(f"compose.yml: service {service} depends on {dep}, which is not defined")
    position = {name: i for i, name in enumerate(dependencies)}
    sorter = graphlib.TopologicalSorter(dependencies)
    try:
        sorter.prepare()
    except graphlib.CycleError as err:
        raise DockerError(
            f"compose.yml: services {', '.join(sorted(set(err.args[1])))} depend on each other in a cycle"
        ) from None
    waves: list[list[str]] = []
    while sorter.is_active():
        wave = sorted(sorter.get_ready(), key=position.__getitem__)
        sorter.done(*wave)
        waves.append(wave)
    return waves


def service_timeout(spec: Container, overrides: Mapping[str, float], service: str) -> float:
    """Seconds to wait for ``service`` once started and the services its command waits for are
    ready: the health check's own verdict (without the start period given to that wait) plus a margin.

    ``overrides`` maps a service (or ``"*"`` for every service) to seconds."""
    if service in overrides:
        return overrides[service]
    if "*" in overrides:
        return overrides["*"]
    check = spec.healthcheck
    if check is None:
        return NO_HEALTHCHECK_TIMEOUT_S
    return check.start_period_s - spec.wait_s + check.retries * (check.interval_s + check.timeout_s) + TIMEOUT_MARGIN_S


def parse_timeouts(values: Iterable[str]) -> dict[str, float]:
    """``--timeout 600`` (every service) and ``--timeout vllm=1800`` (one service)."""
    result: dict[str, float] = {}
    for value in values:
        service, _, seconds = value.rpartition("=")
        try:
            number = float(seconds)
        except ValueError:
            number = -1
        if number <= 0:
            raise DeployError(f"--timeout {value}: give SECONDS or SERVICE=SECONDS (a positive number)")
        result[service or "*"] = number
    return result
