"""Docker basics shared by the apply side: the connection, the project's containers, network and volumes.

Containers are found by label only (Docker Compose's own).
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import docker
import docker.errors

from albert_deploy import __version__
from albert_deploy.converge import containers, reconcile
from albert_deploy.converge.containers import CONFIG_HASH, GPUS_DROPPED, NUMBER, ONEOFF, OURS, PARTS, PROJECT, SERVICE
from albert_deploy.converge.desired import Project
from albert_deploy.errors import DockerError

# --- connecting ---------------------------------------------------------------------------------


def connect() -> Any:
    """A client whose daemon answered, or a DockerError saying how to fix it."""
    try:
        client = docker.from_env(timeout=120, max_pool_size=32)
        if client.api.base_url.startswith("http+docker://"):  # a local socket: no proxy applies, so
            client.api.trust_env = False  # requests need not read the proxy variables at each call
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


def health_from_status(status: str) -> str | None:
    for word in ("unhealthy", "healthy", "health: starting"):
        if f"({word})" in status:
            return word.replace("health: ", "")
    return None


def exit_code(status: str) -> str:
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
                health=health_from_status(row.get("Status", "")),
                config_hash=labels.get(CONFIG_HASH, ""),
                ours=OURS in labels,
                image_id=row.get("ImageID", ""),
                parts=reconcile.decode_parts(labels.get(PARTS, "")),
                gpus_dropped=labels.get(GPUS_DROPPED) == "true",
            )
        )
    return result


def explanation(err: Any) -> str:
    text = getattr(err, "explanation", None) or str(err)
    return str(text).strip().splitlines()[0][:300] if text else "unknown error"


def stop_and_remove(client: Any, container: str) -> None:
    try:
        client.api.stop(container, timeout=containers.STOP_TIMEOUT_S)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError:
        pass
    remove_quietly(client, container)


def remove_quietly(client: Any, container: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        client.api.remove_container(container, force=True)


def ensure_network(client: Any, project: str) -> bool:
    """The project's default network; True when this call created it."""
    name = containers.network_name(project)
    found = client.api.networks(filters={"label": [f"{PROJECT}={project}", f"{containers.NETWORK}=default"]})
    if any(n.get("Name") == name for n in found):
        return False
    try:
        client.api.create_network(
            name,
            driver="bridge",
            labels={PROJECT: project, containers.NETWORK: "default", containers.VERSION: __version__},
            check_duplicate=True,
        )
    except docker.errors.APIError as err:
        if err.status_code == 409:
            raise DockerError(
                f"a network named {name} exists but was not created for project {project}: "
                f"remove it (docker network rm {name})"
            ) from None
        raise DockerError(f"cannot create network {name}: {explanation(err)}") from None
    return True


def remove_network(client: Any, project: str) -> list[str]:
    removed = []
    for net in client.api.networks(filters={"label": [f"{PROJECT}={project}"]}):
        try:
            client.api.remove_network(net["Id"])
            removed.append(net["Name"])
        except docker.errors.APIError:
            pass
    return removed


def ensure_volumes(client: Any, project: Project) -> None:
    existing = {
        v["Name"] for v in (client.api.volumes(filters={"label": f"{PROJECT}={project.name}"}).get("Volumes") or [])
    }
    for volume in project.volumes:
        if containers.volume_name(project.name, volume) not in existing:
            ensure_volume(client, project.name, volume)


def ensure_volume(client: Any, project: str, volume: str) -> str:
    """The project's volume ``volume`` with compose's labels (so that `up` and compose adopt it); its name."""
    name = containers.volume_name(project, volume)
    # Creating an existing volume is a no-op for the daemon.
    client.api.create_volume(
        name, labels={PROJECT: project, containers.VOLUME: volume, containers.VERSION: __version__}
    )
    return name
