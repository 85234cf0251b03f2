"""The Docker side of apply: converge a compose project through the Docker SDK; down, status, logs.

Containers are found by label only (Docker Compose's own). ``reconcile`` decides, this module acts.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
from docker.utils import parse_repository_tag

from . import composefile, containers, reconcile
from .containers import CONFIG_HASH, GPUS_DROPPED, NUMBER, ONEOFF, OURS, PARTS, PROJECT, SERVICE
from .errors import DockerError, ServiceFailed
from .progress import Reporter, Silent

POLL_S = 0.5  # fallback only: daemon events wake the loop at once
LOG_LINES = 15

_NVIDIA_REFUSAL = 'could not select device driver "nvidia"'


# --- connecting ---------------------------------------------------------------------------------


def connect() -> Any:
    """A client whose daemon answered, or a DockerError saying how to fix it."""
    try:
        client = docker.from_env(timeout=120, max_pool_size=32)
        client.ping()
        return client
    except docker.errors.DockerException as err:
        raise _connection_error(str(err)) from None
    except Exception as err:  # requests' errors when the daemon drops the connection
        raise _connection_error(str(err)) from None


def _connection_error(text: str) -> DockerError:
    import os

    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if "Permission denied" in text or "PermissionError" in text:
        return DockerError(
            f"no permission on the Docker socket ({host}): add your user to the docker group "
            "(sudo usermod -aG docker $USER, then log in again) or run as root"
        )
    return DockerError(
        f"cannot reach the Docker daemon at {host}: start it (e.g. sudo systemctl start docker), "
        "or point DOCKER_HOST at a running one"
    )


# --- what exists --------------------------------------------------------------------------------


def _health_from_status(status: str) -> str | None:
    for word in ("unhealthy", "healthy", "health: starting"):
        if f"({word})" in status:
            return word.replace("health: ", "")
    return None


def _exit_code(status: str) -> str:
    match = re.search(r"\((-?\d+)\)", status)  # "Exited (2) 3 seconds ago", "Restarting (1) ..."
    return match.group(1) if match else "?"


def list_containers(client: Any, project: str) -> list[reconcile.Actual]:
    rows = client.api.containers(all=True, filters={"label": [f"{PROJECT}={project}", f"{ONEOFF}=False"]})
    result = []
    for row in rows:
        labels = row.get("Labels") or {}
        result.append(
            reconcile.Actual(
                id=row["Id"],
                name=(row.get("Names") or ["/?"])[0].lstrip("/"),
                service=labels.get(SERVICE, ""),
                number=int(labels.get(NUMBER, "1") or 1),
                state=row.get("State", ""),
                health=_health_from_status(row.get("Status", "")),
                config_hash=labels.get(CONFIG_HASH, ""),
                ours=OURS in labels,
                image_id=row.get("ImageID", ""),
                parts=reconcile.decode_parts(labels.get(PARTS, "")),
                gpus_dropped=labels.get(GPUS_DROPPED) == "true",
            )
        )
    return result


def _image_ids(client: Any, images: set[str]) -> dict[str, str | None]:
    def one(ref: str) -> str | None:
        try:
            return str(client.api.inspect_image(ref)["Id"])
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as err:
            if err.status_code == 404:
                return None
            raise

    with ThreadPoolExecutor(max_workers=8) as pool:
        ordered = sorted(images)
        return dict(zip(ordered, pool.map(one, ordered), strict=True))


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


def plan(client: Any, project: composefile.Project) -> list[reconcile.Action]:
    """What ``up`` would do, touching nothing."""
    ids = _image_ids(client, {s["image"] for s in project.services.values()})
    return reconcile.plan_actions(desired_state(project, ids), list_containers(client, project.name))


# --- images -------------------------------------------------------------------------------------


def pull(client: Any, image: str, services: list[str], reporter: Reporter) -> str:
    """Pull one image, reporting progress on the services that use it; return its id."""
    repository, tag = parse_repository_tag(image)
    layers: dict[str, tuple[int, int]] = {}
    try:
        for event in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
            if "error" in event:
                raise _not_pullable(image, str(event["error"]))
            detail = event.get("progressDetail") or {}
            if event.get("id") and detail.get("total"):
                layers[event["id"]] = (int(detail.get("current", 0)), int(detail["total"]))
            done, total = sum(c for c, _ in layers.values()), sum(t for _, t in layers.values())
            text = f"pulling {image}" + (f" {100 * done // total}%" if total else "")
            for service in services:
                reporter.update(service, state="pulling", detail=text)
        return str(client.api.inspect_image(image)["Id"])
    except docker.errors.APIError as err:
        raise _not_pullable(image, _explanation(err)) from None


def _not_pullable(image: str, why: str) -> DockerError:
    return DockerError(
        f"image {image} is not present locally and cannot be pulled ({why}); "
        "check its name in the profile, log in to its registry, or load it with `docker load`"
    )


def _explanation(err: Any) -> str:
    text = getattr(err, "explanation", None) or str(err)
    return str(text).strip().splitlines()[0][:300] if text else "unknown error"


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
) -> UpResult:
    """Converge ``project``: network, volumes, images, then containers in dependency order."""
    t0 = time.monotonic()
    reporter = reporter or Silent()
    waves = reconcile.start_order({s: composefile.depends_on(spec) for s, spec in project.services.items()})
    images = {spec["image"] for spec in project.services.values()}
    ids = _image_ids(client, images)
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
        network_created = _ensure_network(client, project.name)
        _ensure_volumes(client, project)
        runner = _Runner(client, project, actions, ids, reporter, dict(timeouts or {}), detach, secrets)
        try:
            runner.run(waves)
        except DockerError:
            if network_created and not list_containers(client, project.name):
                _remove_network(client, project.name)
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
    ) -> None:
        self.client, self.project, self.reporter = client, project, reporter
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
                if not futures and self._finished(order, deps):
                    return
                if not changed:  # something turned ready: launch what waited for it right away
                    self.wake.wait(POLL_S)
                    self.wake.clear()

    def _finished(self, order: list[str], deps: Mapping[str, Mapping[str, str]]) -> bool:
        if not all(self.progress[s].started for s in order):
            return False
        if not self.detach:
            return all(self.progress[s].ready for s in order)
        return True

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
        _stop_and_remove(self.client, action.container or "")
        self.reporter.update(action.service, state="removed", detail="")

    def _launch(self, service: str) -> None:
        p = self.progress[service]
        action = p.action
        for duplicate in action.duplicates:
            _stop_and_remove(self.client, duplicate)
        ready = p.prepared.result() if p.prepared else None
        if action.kind == reconcile.RECREATE:
            self.reporter.update(service, state="recreating", detail=action.reason)
            _stop_and_remove(self.client, action.container or "")
        if ready and action.kind == reconcile.RECREATE:
            self.client.api.rename(ready, containers.container_name(self.project.name, service))
        if ready:
            p.container = ready
        elif action.kind in (reconcile.CREATE, reconcile.RECREATE):
            self.reporter.update(service, state="creating", detail="")
            p.container = self._create(service)
            p.created_here = True
        self.reporter.update(service, state="starting", detail="")
        self._start(service, p.container or "")
        self._arm(service)
        p.started = True
        self.reporter.update(service, state="started")

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
        request = containers.create_request(self.project, service, labels)
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
                f"service {service}: the daemon refused to create its container: {_explanation(err)}"
            ) from None

    def _start(self, service: str, container: str) -> None:
        p = self.progress[service]
        try:
            if p.action.kind == reconcile.START and p.action.reason == "container is paused":
                self.client.api.unpause(container)
            else:
                self.client.api.start(container)
        except docker.errors.APIError as err:
            text = _explanation(err)
            # Leave nothing in state `created` behind.
            if p.created_here or p.action.kind == reconcile.START:
                _remove_quietly(self.client, container)
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
            status, health = row.get("State", ""), _health_from_status(row.get("Status", ""))
            if (status, health) != (p.state, p.health):
                p.state, p.health = status, health
                self.reporter.update(service, state=status, health=health or "")
            has_check = bool(self.project.services[service].get("healthcheck"))
            if status in ("exited", "dead", "restarting") or p.container in self.died:
                p.failed = f"exited with code {self.died.get(p.container or '') or _exit_code(row.get('Status', ''))}"
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
                _remove_quietly(self.client, p.container)

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


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if len(secret) >= 6:
            text = text.replace(secret, "********")
    return text


def _stop_and_remove(client: Any, container: str) -> None:
    try:
        client.api.stop(container, timeout=containers.STOP_TIMEOUT_S)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError:
        pass
    _remove_quietly(client, container)


def _remove_quietly(client: Any, container: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        client.api.remove_container(container, force=True)


def _ensure_network(client: Any, project: str) -> bool:
    """The project's default network; True when this call created it."""
    name = containers.network_name(project)
    found = client.api.networks(filters={"label": [f"{PROJECT}={project}", f"{containers.NETWORK}=default"]})
    if any(n.get("Name") == name for n in found):
        return False
    try:
        client.api.create_network(
            name,
            driver="bridge",
            labels={PROJECT: project, containers.NETWORK: "default", containers.VERSION: containers.__version__},
            check_duplicate=True,
        )
    except docker.errors.APIError as err:
        if err.status_code == 409:
            raise DockerError(
                f"a network named {name} exists but was not created for project {project}: "
                f"remove it (docker network rm {name})"
            ) from None
        raise DockerError(f"cannot create network {name}: {_explanation(err)}") from None
    return True


def _remove_network(client: Any, project: str) -> list[str]:
    removed = []
    for net in client.api.networks(filters={"label": [f"{PROJECT}={project}"]}):
        try:
            client.api.remove_network(net["Id"])
            removed.append(net["Name"])
        except docker.errors.APIError:
            pass
    return removed


def _ensure_volumes(client: Any, project: composefile.Project) -> None:
    existing = {
        v["Name"] for v in (client.api.volumes(filters={"label": f"{PROJECT}={project.name}"}).get("Volumes") or [])
    }
    for volume in project.volumes:
        name = containers.volume_name(project.name, volume)
        if name not in existing:
            client.api.create_volume(
                name,
                labels={PROJECT: project.name, containers.VOLUME: volume, containers.VERSION: containers.__version__},
            )


# --- down, status, logs -------------------------------------------------------------------------


def down(client: Any, project: str, volumes: bool = False) -> dict[str, Any]:
    """Stop and remove the project's containers and network; its volumes only when asked."""
    found = list_containers(client, project)
    # Dependents first (the API), as compose does: read the order from the labels.
    by_id = {c.id: c for c in found}
    rows = client.api.containers(all=True, filters={"label": [f"{PROJECT}={project}"]})
    deps = {
        (r.get("Labels") or {}).get(SERVICE, ""): [
            d.split(":")[0] for d in ((r.get("Labels") or {}).get(containers.DEPENDS_ON) or "").split(",") if d
        ]
        for r in rows
    }
    needed = {d for ds in deps.values() for d in ds}
    first = [r["Id"] for r in rows if (r.get("Labels") or {}).get(SERVICE) not in needed]
    later = [r["Id"] for r in rows if r["Id"] not in first]
    with ThreadPoolExecutor(max_workers=16) as pool:
        for batch in (first, later):
            list(pool.map(lambda cid: _stop_and_remove(client, cid), batch))
    networks = _remove_network(client, project)
    removed_volumes: list[str] = []
    if volumes:
        for volume in client.api.volumes(filters={"label": f"{PROJECT}={project}"}).get("Volumes") or []:
            client.api.remove_volume(volume["Name"])
            removed_volumes.append(volume["Name"])
    return {
        "project": project,
        "containers": sorted(by_id[c].name if c in by_id else c[:12] for c in [r["Id"] for r in rows]),
        "networks": networks,
        "volumes": removed_volumes,
    }


def status(client: Any, project: str, desired: composefile.Project | None) -> list[dict[str, Any]]:
    """One row per container of the project, with drift against ``desired`` (what renders now)."""
    found = list_containers(client, project)
    ids = _image_ids(client, {s["image"] for s in desired.services.values()}) if desired else {}
    wanted = {d.service: d for d in desired_state(desired, ids)} if desired else {}
    rows = []
    order = {name: i for i, name in enumerate(desired.services if desired else [])}
    for actual in sorted(found, key=lambda c: (order.get(c.service, len(order)), c.service, c.number)):
        info = client.api.inspect_container(actual.id)
        host = info.get("HostConfig") or {}
        rows.append(
            {
                "service": actual.service,
                "container": actual.name,
                "state": actual.state,
                "health": actual.health or "",
                "image": (info.get("Config") or {}).get("Image", ""),
                "gpus": _gpus(host, actual.gpus_dropped),
                "ports": _published(host),
                "started_by": "albert-deploy" if actual.ours else "docker compose",
                "drift": _drift(actual, wanted.get(actual.service), info, desired),
            }
        )
    present = {r["service"] for r in rows}
    for service in wanted:
        if service not in present:
            rows.append({
                "service": service, "container": "", "state": "missing", "health": "", "image": wanted[service].image,
                "gpus": "", "ports": [], "started_by": "", "drift": "not created",
            })  # fmt: skip
    return rows


def _gpus(host: Mapping[str, Any], dropped: bool) -> str:
    requests = host.get("DeviceRequests") or []
    ids = [i for r in requests for i in (r.get("DeviceIDs") or [])]
    if ids:
        return ",".join(ids)
    counts = [r.get("Count") for r in requests if r.get("Count")]
    if counts:
        return "all" if -1 in counts else f"any {sum(counts)}"
    return "none (--no-gpus)" if dropped else "-"


def _published(host: Mapping[str, Any]) -> list[str]:
    result = []
    for port, bindings in sorted((host.get("PortBindings") or {}).items()):
        for binding in bindings or []:
            result.append(f"{binding.get('HostIp') or '0.0.0.0'}:{binding.get('HostPort')}->{port}")
    return result


def _drift(
    actual: reconcile.Actual,
    want: reconcile.Desired | None,
    info: Mapping[str, Any],
    desired: composefile.Project | None,
) -> str:
    if desired is None:
        return "unknown"
    if want is None:
        return "not in the profile"
    if actual.ours:
        return reconcile.why_different(want, actual) or "none"
    # Compose's hash is its own: compare what the daemon reports field by field instead.
    changed = compare_with_compose_container(desired.services[actual.service], info)
    unverified = "bind-mounted file contents not verifiable" if any(
        m.get("type") == "bind" for m in desired.services[actual.service].get("volumes") or []) else ""  # fmt: skip
    if changed:
        return "changed: " + ", ".join(changed) + " (started by docker compose)"
    return "none (started by docker compose" + (f"; {unverified})" if unverified else ")")


def compare_with_compose_container(spec: Mapping[str, Any], info: Mapping[str, Any]) -> list[str]:
    """Fields of ``spec`` that a container started by ``docker compose up`` does not match."""
    config, host = info.get("Config") or {}, info.get("HostConfig") or {}
    changed = []
    if config.get("Image") != spec.get("image"):
        changed.append("image")
    if spec.get("command") is not None and config.get("Cmd") != spec["command"]:
        changed.append("command")
    env = set(config.get("Env") or [])
    if any(f"{k}={v}" not in env for k, v in (spec.get("environment") or {}).items()):
        changed.append("environment")
    _, bindings = containers._ports(spec.get("ports") or [])
    actual_bindings = {k: [{"HostIp": b.get("HostIp", ""), "HostPort": b.get("HostPort", "")} for b in v or []]
                       for k, v in (host.get("PortBindings") or {}).items()}  # fmt: skip
    if bindings != actual_bindings:
        changed.append("ports")
    test = containers.healthcheck(spec["healthcheck"])["test"] if spec.get("healthcheck") else None
    if test is not None and (config.get("Healthcheck") or {}).get("Test") != test:
        changed.append("healthcheck")
    if bool(containers.device_requests(spec)) != bool(host.get("DeviceRequests")):
        changed.append("deploy")
    return changed


def logs(client: Any, project: str, service: str, follow: bool, tail: int | None) -> Iterator[bytes]:
    found = [c for c in list_containers(client, project) if c.service == service]
    if not found:
        services = sorted({c.service for c in list_containers(client, project)})
        known = f"; its services: {', '.join(services)}" if services else " (it has no containers)"
        raise DockerError(f"project {project} has no service {service}{known}")
    container = sorted(found, key=lambda c: c.number)[0]
    return iter(client.api.logs(container.id, stream=True, follow=follow, tail=tail if tail is not None else "all"))


def exec_json(client: Any, project: str, service: str, argv: list[str], stdin: bytes) -> tuple[int, bytes]:
    """Run ``argv`` in the service's container with ``stdin``; its exit code and stdout."""
    import socket

    found = [c for c in list_containers(client, project) if c.service == service and c.state == "running"]
    if not found:
        raise DockerError(f"service {service} of project {project} is not running: run `albert-deploy up` first")
    exec_id = client.api.exec_create(found[0].id, argv, stdin=True, stdout=True, stderr=False)["Id"]
    sock = client.api.exec_start(exec_id, socket=True)
    raw = getattr(sock, "_sock", sock)
    raw.sendall(stdin)
    raw.shutdown(socket.SHUT_WR)
    out = bytearray()
    # The stream is multiplexed (8-byte frame headers) since no TTY was asked for.
    for kind, chunk in _frames(raw):
        if kind == 1:
            out += chunk
    code = client.api.exec_inspect(exec_id).get("ExitCode")
    return (code if code is not None else -1), bytes(out)


def _frames(sock: Any) -> Iterator[tuple[int, bytes]]:
    def read(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                return data
            data += chunk
        return data

    while True:
        header = read(8)
        if len(header) < 8:
            return
        size = int.from_bytes(header[4:8], "big")
        yield header[0], read(size)
