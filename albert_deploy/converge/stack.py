"""The Docker side of ``up`` and ``plan``: converge a compose project through the Docker SDK.

``reconcile`` decides, this module acts. Connection, network and volumes: ``engine``; images:
``images``; down, status, logs: ``stackops``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import docker.errors

from albert_deploy.converge import composefile, containers, reconcile
from albert_deploy.converge.containers import PROJECT
from albert_deploy.converge.engine import (
    ensure_network,
    ensure_volumes,
    exit_code,
    explanation,
    health_from_status,
    list_containers,
    remove_network,
    remove_quietly,
    stop_and_remove,
)
from albert_deploy.converge.images import local_images, pull
from albert_deploy.converge.progress import Reporter, Silent
from albert_deploy.errors import DockerError, ServiceFailed
from albert_deploy.render.envfile import redact

POLL_S = 0.5  # fallback only: daemon events wake the loop at once
LOG_LINES = 15

_NVIDIA_REFUSAL = 'could not select device driver "nvidia"'


def desired_state(project: composefile.Project, image_ids: Mapping[str, str | None]) -> list[reconcile.Desired]:
    return [
        reconcile.Desired(
            service=name,
            config_hash=composefile.config_hash(project, name),
            parts=reconcile.service_parts(project, name),
            image=spec["image"],
            image_id=image_ids.get(spec["image"]),
            depends_on=composefile.depends_on(spec),
        )
        for name, spec in project.services.items()
    ]


def plan(
    client: Any, project: composefile.Project, locked_ids: Mapping[str, str] | None = None
) -> list[reconcile.Action]:
    """What ``up`` would do, touching nothing."""
    ids, _ = local_images(client, {s["image"] for s in project.services.values()}, locked_ids)
    return reconcile.plan_actions(desired_state(project, ids), list_containers(client, project.name))


# --- up -----------------------------------------------------------------------------------------


@dataclass
class _Progress:
    action: reconcile.Action
    container: str | None = None
    launched: bool = False  # work submitted
    started: bool = False  # the container runs (or already ran)
    ready: bool = False
    failed: str | None = None
    since: float = 0.0
    ready_at: float = 0.0
    deadline: float = 0.0
    state: str = ""
    health: str | None = None
    created_here: bool = False
    prepared: Future[str | None] | None = None  # created ahead while its dependencies start


@dataclass(frozen=True)
class _SetAside:
    """A container being replaced, stopped and renamed aside until its successor runs."""

    id: str
    name: str
    was_running: bool


@dataclass
class UpResult:
    project: str
    actions: list[reconcile.Action]
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0


def up(
    client: Any,
    project: composefile.Project,
    *,
    timeouts: Mapping[str, float] | None = None,
    detach: bool = False,
    reporter: Reporter | None = None,
    secrets: tuple[str, ...] = (),
    locked_ids: Mapping[str, str] | None = None,
) -> UpResult:
    """Converge ``project``: network, volumes, images, then containers in dependency order.

    ``locked_ids``: pinned reference -> locked image id (``images.local_images``): a loaded bundle's
    images run by id, with the same labels and config hash as by their reference."""
    t0 = time.monotonic()
    reporter = reporter or Silent()
    waves = reconcile.start_order({s: composefile.depends_on(spec) for s, spec in project.services.items()})
    images = {spec["image"] for spec in project.services.values()}
    ids, run_as = local_images(client, images, locked_ids)
    existing = list_containers(client, project.name)
    actions = reconcile.plan_actions(desired_state(project, ids), existing)
    changing = {a.service for a in actions if a.kind in (reconcile.CREATE, reconcile.RECREATE)}
    missing = sorted(i for i, v in ids.items() if v is None and any(
        project.services[a.service]["image"] == i for a in actions if a.service in changing))  # fmt: skip
    reporter.begin([a.service for a in actions])
    try:
        for image in missing:  # before anything changes: an unpullable image leaves the stack as it was
            users = [s for s, spec in project.services.items() if spec["image"] == image]
            ids[image] = pull(client, image, users, reporter)
        if missing:  # a pulled image may equal what already runs
            actions = reconcile.plan_actions(desired_state(project, ids), existing)
        network_created = ensure_network(client, project.name)
        ensure_volumes(client, project)
        runner = _Runner(client, project, actions, ids, reporter, dict(timeouts or {}), detach, secrets, run_as)
        try:
            runner.run(waves)
        except DockerError:
            if network_created and not list_containers(client, project.name):
                remove_network(client, project.name)
            raise
    finally:
        reporter.end()
    return UpResult(project.name, actions, runner.summary(), time.monotonic() - t0)


class _Runner:
    """Starts services as soon as their dependencies allow, and watches them until ready."""

    def __init__(
        self,
        client: Any,
        project: composefile.Project,
        actions: list[reconcile.Action],
        image_ids: Mapping[str, str | None],
        reporter: Reporter,
        timeouts: dict[str, float],
        detach: bool,
        secrets: tuple[str, ...],
        run_as: Mapping[str, str],
    ) -> None:
        self.client, self.project, self.reporter, self.run_as = client, project, reporter, run_as
        self.image_ids, self.timeouts, self.detach, self.secrets = image_ids, timeouts, detach, secrets
        self.removals = [a for a in actions if a.kind == reconcile.REMOVE]
        self.progress = {a.service: _Progress(a, container=a.container) for a in actions if a.kind != reconcile.REMOVE}
        self.wake = threading.Event()
        self.died: dict[str, str] = {}  # container id -> exit code, from "die" events

    # The GPU services of this run start first: on a host without the NVIDIA runtime the refusal
    # comes before anything else was started.
    def _gpu_first(self, service: str) -> bool:
        return bool(containers.device_requests(self.project.services[service]))

    def run(self, waves: list[list[str]]) -> None:
        order = [s for wave in waves for s in wave]
        deps = {s: composefile.depends_on(self.project.services[s]) for s in order}
        # Only those free to start at once: a GPU service waiting for another must not hold the databases back.
        gpu = {
            s for s in order if self._gpu_first(s) and self.progress[s].action.kind != reconcile.NOTHING and not deps[s]
        }
        events = self._watch()
        try:
            self._run(order, deps, gpu)
        finally:
            with contextlib.suppress(Exception):
                events.close()

    def _watch(self) -> Any:
        """Wake the loop on every event of the project (start, health_status, die...)."""
        stream = self.client.api.events(filters={"label": [f"{PROJECT}={self.project.name}"]}, decode=True)

        def read() -> None:
            with contextlib.suppress(Exception):  # ends when the stream is closed
                for event in stream:
                    if event.get("Type") == "container" and event.get("Action") == "die":
                        self.died[event.get("id", "")] = (
                            (event.get("Actor") or {}).get("Attributes", {}).get("exitCode", "?")
                        )
                    self.wake.set()

        threading.Thread(target=read, daemon=True).start()
        return stream

    def _run(self, order: list[str], deps: dict[str, dict[str, str]], gpu: set[str]) -> None:
        with ThreadPoolExecutor(max_workers=16) as pool:
            for future in [pool.submit(self._remove, a) for a in self.removals]:
                future.result()
            futures: dict[str, Future[None]] = {}
            for service in order:
                p = self.progress[service]
                if p.action.kind == reconcile.NOTHING:
                    p.launched = p.started = True
                    self._arm(service)
                    self.reporter.update(service, state="unchanged")
                elif p.action.kind in (reconcile.CREATE, reconcile.RECREATE) and deps[service]:
                    # Create what must wait (the API) now: only its start remains on the critical path.
                    p.prepared = pool.submit(self._prepare, service)
            while True:
                for service, future in list(futures.items()):
                    if future.done():
                        del futures[service]
                        error = future.exception()
                        if error is not None:
                            self._abort(futures)
                            raise error
                for service in order:
                    p = self.progress[service]
                    if p.launched or not self._deps_met(deps[service]):
                        continue
                    if service not in gpu and any(not self.progress[g].started for g in gpu):
                        continue
                    p.launched = True
                    futures[service] = pool.submit(self._launch, service)
                    futures[service].add_done_callback(lambda _f: self.wake.set())
                changed = self._poll()
                failed = [s for s in order if self.progress[s].failed]
                if failed:
                    self._abort(futures)
                    raise self._failure(failed)
                if not futures and self._finished(order):
                    return
                if not changed:  # something turned ready: launch what waited for it right away
                    self.wake.wait(POLL_S)
                    self.wake.clear()

    def _finished(self, order: list[str]) -> bool:
        return all(self.progress[s].started and (self.detach or self.progress[s].ready) for s in order)

    def _deps_met(self, deps: Mapping[str, str]) -> bool:
        for dep, condition in deps.items():
            p = self.progress[dep]
            if condition == "service_healthy" and not p.ready:
                return False
            if not p.started:
                return False
        return True

    def _arm(self, service: str) -> None:
        p = self.progress[service]
        p.since = time.monotonic()
        p.deadline = p.since + reconcile.service_timeout(self.project.services[service], self.timeouts, service)

    # Work done in pool threads: one service's containers.

    def _remove(self, action: reconcile.Action) -> None:
        self.reporter.update(action.service, state="removing", detail=action.reason)
        stop_and_remove(self.client, action.container or "")
        self.reporter.update(action.service, state="removed", detail="")

    def _launch(self, service: str) -> None:
        p = self.progress[service]
        action = p.action
        for duplicate in action.duplicates:
            stop_and_remove(self.client, duplicate)
        ready = p.prepared.result() if p.prepared else None
        old: _SetAside | None = None
        if action.kind == reconcile.RECREATE:
            self.reporter.update(service, state="recreating", detail=action.reason)
            old = self._set_aside(service, action.container or "")
        try:
            if ready and action.kind == reconcile.RECREATE:
                self._rename(service, ready, containers.container_name(self.project.name, service))
            if ready:
                p.container = ready
            elif action.kind in (reconcile.CREATE, reconcile.RECREATE):
                self.reporter.update(service, state="creating", detail="")
                p.container = self._create(service)
                p.created_here = True
            self.reporter.update(service, state="starting", detail="")
            self._start(service, p.container or "")
        except BaseException:
            if old is not None:
                self._put_back(service, old)
            raise
        if old is not None:  # the new container runs: only now does the old one go
            remove_quietly(self.client, old.id)
        self._arm(service)
        p.started = True
        self.reporter.update(service, state="started")

    def _set_aside(self, service: str, container: str) -> _SetAside | None:
        """Stop the container being replaced and rename it out of the way, as docker-compose 1.x did,
        so that it can come back if its successor fails to be created or started. None: it is gone
        (or could not be renamed, and was removed as before)."""
        try:
            info = self.client.api.inspect_container(container)
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError:
            stop_and_remove(self.client, container)
            return None
        name = str(info.get("Name", "")).lstrip("/") or containers.container_name(self.project.name, service)
        state = info.get("State") or {}
        was_running = bool(state.get("Running")) or bool(state.get("Paused"))
        if state.get("Dead") or state.get("Status") == "removing":
            stop_and_remove(self.client, container)
            return None
        try:
            if was_running:
                self.client.api.stop(container, timeout=containers.STOP_TIMEOUT_S)
            self.client.api.rename(container, f"{container[:12]}_{name}")
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError:
            stop_and_remove(self.client, container)
            return None
        return _SetAside(container, name, was_running)

    def _put_back(self, service: str, old: _SetAside) -> None:
        """The successor failed: remove it, and give the old container back its name (and its run)."""
        p = self.progress[service]
        if p.container and p.container != old.id and p.created_here:
            remove_quietly(self.client, p.container)
        p.container, p.created_here = old.id, False
        try:
            self.client.api.rename(old.id, old.name)
            if old.was_running:
                self.client.api.start(old.id)
        except docker.errors.APIError as err:  # the original error is raised; say what is left
            self.reporter.update(
                service,
                state="failed",
                detail=f"could not restore its previous container {old.id[:12]}: {explanation(err)}",
            )
            return
        self.reporter.update(service, state="restored", detail="previous container put back")

    def _rename(self, service: str, container: str, name: str) -> None:
        try:
            self.client.api.rename(container, name)
        except docker.errors.APIError as err:
            raise DockerError(
                f"service {service}: cannot rename its new container to {name}: {explanation(err)}"
            ) from None

    def _prepare(self, service: str) -> str | None:
        """Create the container ahead of its start; a recreated one under a temporary name."""
        p = self.progress[service]
        suffix = "-next" if p.action.kind == reconcile.RECREATE else ""
        try:
            p.container = self._create(service, suffix)
        except DockerError:
            return None  # _launch tries again, and reports the error at the right time
        p.created_here = True
        self.reporter.update(service, state="created")
        return p.container

    def _create(self, service: str, suffix: str = "") -> str:
        spec = self.project.services[service]
        labels = containers.labels(
            self.project,
            service,
            composefile.config_hash(self.project, service),
            reconcile.encode_parts(reconcile.service_parts(self.project, service)),
            self.image_ids.get(spec["image"]) or "",
        )
        request = containers.create_request(self.project, service, labels, self.run_as.get(spec["image"]))
        request["name"] += suffix
        try:
            return str(self.client.api.create_container(**request)["Id"])
        except docker.errors.APIError as err:
            if err.status_code == 409:
                raise DockerError(
                    f"service {service}: a container named {request['name']} already exists and does not belong "
                    f"to project {self.project.name} (no compose labels): remove or rename it"
                ) from None
            raise DockerError(
                f"service {service}: the daemon refused to create its container: {explanation(err)}"
            ) from None

    def _start(self, service: str, container: str) -> None:
        p = self.progress[service]
        try:
            if p.action.kind == reconcile.START and p.action.reason == "container is paused":
                self.client.api.unpause(container)
            else:
                self.client.api.start(container)
        except docker.errors.APIError as err:
            text = explanation(err)
            # Leave nothing in state `created` behind.
            if p.created_here or p.action.kind == reconcile.START:
                remove_quietly(self.client, container)
            if _NVIDIA_REFUSAL in str(err) or "nvidia" in text.lower():
                raise DockerError(
                    f"service {service} requests a GPU, but this Docker host has no NVIDIA container runtime "
                    f"({_NVIDIA_REFUSAL} with capabilities: [[gpu]]). Install the NVIDIA Container Toolkit and "
                    "restart Docker, use a CPU profile (`gpus: cpu` where the server allows it), or try the stack "
                    "without GPUs with `albert-deploy up --no-gpus`"
                ) from None
            if "port is already allocated" in text or "address already in use" in text:
                raise DockerError(
                    f"service {service}: a host port it publishes is already in use ({text}); "
                    "choose another port in the profile"
                ) from None
            raise DockerError(f"service {service}: the daemon refused to start it: {text}") from None

    # Watching.

    def _poll(self) -> bool:
        """One listing of the project's containers per round, not one inspect per container."""
        waiting = [(s, p) for s, p in self.progress.items() if p.started and not (p.ready or p.failed) and p.container]
        if not waiting:
            return False
        changed = False
        rows = self.client.api.containers(all=True, filters={"label": [f"{PROJECT}={self.project.name}"]})
        by_id = {r["Id"]: r for r in rows}
        for service, p in waiting:
            row = by_id.get(p.container or "")
            if row is None:
                p.failed = "its container disappeared"
                continue
            status, health = row.get("State", ""), health_from_status(row.get("Status", ""))
            if (status, health) != (p.state, p.health):
                p.state, p.health = status, health
                self.reporter.update(service, state=status, health=health or "")
            has_check = bool(self.project.services[service].get("healthcheck"))
            if status in ("exited", "dead", "restarting") or p.container in self.died:
                p.failed = f"exited with code {self.died.get(p.container or '') or exit_code(row.get('Status', ''))}"
            elif health == "unhealthy":
                p.failed = "its health check failed (unhealthy)"
            elif status == "running" and (health == "healthy" or not has_check):
                p.ready, p.ready_at, changed = True, time.monotonic(), True
                self.reporter.update(service, state="ready")
            elif time.monotonic() > p.deadline:
                waited = p.deadline - p.since
                p.failed = (
                    f"not healthy after {waited:.0f} s (health: {health or 'none'}); "
                    f"allow more with --timeout {service}=SECONDS"
                )
        return changed

    def _failure(self, services: list[str]) -> ServiceFailed:
        parts = []
        for service in services:
            p = self.progress[service]
            self.reporter.update(service, state="failed", detail=p.failed or "")
            parts.append(f"service {service} failed: {p.failed}." + self._evidence(p.container or ""))
        others = (
            "The other services were left as they are; see `albert-deploy status` and `albert-deploy logs SERVICE`."
        )
        return ServiceFailed("\n".join([*parts, others]))

    def _evidence(self, container: str) -> str:
        lines = []
        try:
            state = self.client.api.inspect_container(container)["State"]
            log = (state.get("Health") or {}).get("Log") or []
            if log:
                output = str(log[-1].get("Output", "")).strip()
                lines.append(
                    f"\n  last health check (exit {log[-1].get('ExitCode')}): " + (output[-500:] or "(no output)")
                )
            logs = self.client.api.logs(container, tail=LOG_LINES).decode("utf-8", "replace").rstrip()
            if logs:
                lines.append("\n  last log lines:\n" + "\n".join("    " + line for line in logs.splitlines()))
        except docker.errors.APIError:
            pass
        return redact("".join(lines), self.secrets)

    def _abort(self, futures: dict[str, Future[None]]) -> None:
        """Let work in flight finish, then remove what this run created and never started."""
        for future in futures.values():
            future.exception()
        for p in self.progress.values():
            if p.prepared:
                p.prepared.exception()
        for p in self.progress.values():
            if p.created_here and not p.started and p.container:
                remove_quietly(self.client, p.container)

    def summary(self) -> dict[str, dict[str, Any]]:
        return {
            service: {
                "action": p.action.kind,
                "reason": p.action.reason,
                "container": (p.container or "")[:12],
                "state": p.state or ("running" if p.started else "created"),
                "health": p.health or "",
                "seconds": round((p.ready_at or time.monotonic()) - p.since, 1) if p.since else 0.0,
            }
            for service, p in self.progress.items()
        }
