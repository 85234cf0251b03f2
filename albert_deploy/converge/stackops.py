"""down, status, logs and exec on a project's containers."""

from __future__ import annotations

import contextlib
import graphlib
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker.errors
from docker.utils.socket import STDOUT, frames_iter

from albert_deploy.converge import containers, reconcile
from albert_deploy.converge.containers import PROJECT, SERVICE
from albert_deploy.converge.desired import Container, Project
from albert_deploy.converge.engine import list_containers, remove_network, stop_and_remove
from albert_deploy.converge.images import local_images
from albert_deploy.converge.runner import desired_state
from albert_deploy.errors import DockerError

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
    with ThreadPoolExecutor(max_workers=16) as pool:
        for wave in _dependents_first(deps):
            batch = [r["Id"] for r in rows if (r.get("Labels") or {}).get(SERVICE, "") in wave]
            list(pool.map(lambda cid: stop_and_remove(client, cid), batch))
    networks = remove_network(client, project)
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


def _dependents_first(deps: Mapping[str, list[str]]) -> list[set[str]]:
    """Services in waves, each needed by none of the later ones (graphlib over the reversed edges)."""
    dependents: dict[str, set[str]] = {service: set() for service in deps}
    for service, needed in deps.items():
        for dep in needed:
            dependents.setdefault(dep, set()).add(service)
    sorter = graphlib.TopologicalSorter(dependents)
    try:
        sorter.prepare()
    except graphlib.CycleError:  # hand-edited labels: remove everything at once
        return [set(dependents)]
    waves = []
    while sorter.is_active():
        wave = set(sorter.get_ready())
        sorter.done(*wave)
        waves.append(wave)
    return waves


def status(
    client: Any,
    project: str,
    desired: Project | None,
    locked: Mapping[str, Mapping[str, Any]],
    locked_ids: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One row per container of the project, with drift against ``desired`` (what renders now) and
    whether it runs the image its lock entry (``locked``, per service) names."""
    found = list_containers(client, project)
    images = {s.image for s in desired.services.values()} if desired else set()
    ids = local_images(client, images, locked_ids)[0] if desired else {}
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
                "lock": _lock_state(client, info, locked.get(actual.service)),
            }
        )
    present = {r["service"] for r in rows}
    for service in wanted:
        if service not in present:
            rows.append({
                "service": service, "container": "", "state": "missing", "health": "", "image": wanted[service].image,
                "gpus": "", "ports": [], "started_by": "", "drift": "not created", "lock": "-",
            })  # fmt: skip
    return rows


def _lock_state(client: Any, info: Mapping[str, Any], entry: Mapping[str, Any] | None) -> str:
    if entry is None:
        return "-"
    image_id = str(info.get("Image", ""))
    if image_id and image_id == entry.get("id"):
        return "matches (local image, not pinned)" if entry.get("local_only") else "matches"
    if entry.get("local_only"):  # no registry digest: the image id locked is all there is to compare
        return f"differs: runs {image_id[7:19] or '?'}, lock {str(entry.get('id'))[7:19]} (local image)"
    try:
        digests = client.api.inspect_image(image_id).get("RepoDigests") or []
    except docker.errors.APIError:
        digests = []
    if entry.get("pinned") in digests:
        return "matches"
    return f"differs: runs {image_id[7:19] or '?'}, lock {str(entry.get('digest'))[:19]}"


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
    desired: Project | None,
) -> str:
    if desired is None:
        return "unknown"
    if want is None:
        return "not in the profile"
    if actual.ours:
        return reconcile.why_different(want, actual) or "none"
    # Compose's hash is its own: compare what the daemon reports field by field instead.
    changed = compare_with_compose_container(desired.services[actual.service], info)
    unverified = "bind-mounted file contents not verifiable" if desired.services[actual.service].binds else ""
    if changed:
        return "changed: " + ", ".join(changed) + " (started by docker compose)"
    return "none (started by docker compose" + (f"; {unverified})" if unverified else ")")


def compare_with_compose_container(spec: Container, info: Mapping[str, Any]) -> list[str]:
    """Fields of ``spec`` that a container started by ``docker compose up`` does not match."""
    config, host = info.get("Config") or {}, info.get("HostConfig") or {}
    changed = []
    if config.get("Image") != spec.image:
        changed.append("image")
    if spec.command is not None and config.get("Cmd") != list(spec.command):
        changed.append("command")
    env = set(config.get("Env") or [])
    if any(f"{k}={v}" not in env for k, v in spec.environment.items()):
        changed.append("environment")
    _, bindings = containers.port_bindings(spec.ports)
    actual_bindings = {k: [{"HostIp": b.get("HostIp", ""), "HostPort": b.get("HostPort", "")} for b in v or []]
                       for k, v in (host.get("PortBindings") or {}).items()}  # fmt: skip
    if bindings != actual_bindings:
        changed.append("ports")
    if spec.healthcheck and (config.get("Healthcheck") or {}).get("Test") != list(spec.healthcheck.test):
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
    found = [c for c in list_containers(client, project) if c.service == service and c.state == "running"]
    if not found:
        raise DockerError(f"service {service} of project {project} is not running: run `albert-deploy up` first")
    out = bytearray()
    code, _ = exec_stream(client, found[0].id, argv, stdin=iter([stdin]), sink=out.extend)
    return code, bytes(out)


def exec_stream(
    client: Any,
    container: str,
    argv: list[str],
    *,
    stdin: Iterator[bytes] | None = None,
    sink: Callable[[bytes], object] | None = None,
    environment: Mapping[str, str] | None = None,
) -> tuple[int, bytes]:
    """Run ``argv`` in ``container``: ``stdin``'s chunks are sent from a thread while stdout goes to
    ``sink`` as it comes (no size limit either way). Returns the exit code and stderr (its last 64 KiB)."""
    import socket
    import threading

    exec_id = client.api.exec_create(
        container, argv, stdin=stdin is not None, stdout=True, stderr=True, environment=dict(environment or {})
    )["Id"]
    sock = client.api.exec_start(exec_id, socket=True)
    raw = getattr(sock, "_sock", sock)
    failed: list[OSError] = []

    def send() -> None:
        try:
            for chunk in stdin or iter(()):
                raw.sendall(chunk)
        except OSError as err:  # the command exited early: its exit code and stderr say why
            failed.append(err)
        finally:
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    err = bytearray()
    # The stream is multiplexed (8-byte frame headers) since no TTY was asked for.
    for kind, chunk in frames_iter(raw, tty=False):  # type: ignore[no-untyped-call]
        if kind == STDOUT:
            if sink is not None:
                sink(chunk)
        else:
            err = (err + chunk)[-65536:]
    sender.join()
    code = client.api.exec_inspect(exec_id).get("ExitCode")
    return (code if code is not None else -1), bytes(err)
