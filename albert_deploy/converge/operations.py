"""The Docker operations ``up`` runs on one service's containers: create, set the old one aside,
put it back when its successor fails, start. Each raises :class:`DockerError` with the fix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import docker.errors

from albert_deploy.converge import containers, reconcile
from albert_deploy.converge.desired import Project, config_hash
from albert_deploy.converge.engine import explanation, remove_quietly, stop_and_remove
from albert_deploy.converge.progress import Reporter
from albert_deploy.errors import DockerError
from albert_deploy.render.envfile import redact

LOG_LINES = 15
NVIDIA_REFUSAL = 'could not select device driver "nvidia"'


@dataclass(frozen=True)
class SetAside:
    """A container being replaced, stopped and renamed aside until its successor runs."""

    id: str
    name: str
    was_running: bool


@dataclass(frozen=True)
class Operations:
    client: Any
    project: Project
    reporter: Reporter
    image_ids: Mapping[str, str | None]
    run_as: Mapping[str, str]  # image reference -> what to run instead (a locked image id)

    def create(self, service: str, suffix: str = "") -> str:
        spec = self.project.services[service]
        labels = containers.labels(
            self.project,
            service,
            config_hash(self.project, service),
            reconcile.encode_parts(reconcile.service_parts(self.project, service)),
            self.image_ids.get(spec.image) or "",
        )
        request = containers.create_request(self.project, service, labels, self.run_as.get(spec.image))
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

    def set_aside(self, service: str, container: str) -> SetAside | None:
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
        return SetAside(container, name, was_running)

    def put_back(self, service: str, old: SetAside) -> None:
        """The successor failed (and is gone): give the old container back its name (and its run)."""
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

    def rename(self, service: str, container: str, name: str) -> None:
        try:
            self.client.api.rename(container, name)
        except docker.errors.APIError as err:
            raise DockerError(
                f"service {service}: cannot rename its new container to {name}: {explanation(err)}"
            ) from None

    def start(self, service: str, container: str, unpause: bool, remove_on_failure: bool) -> None:
        try:
            if unpause:
                self.client.api.unpause(container)
            else:
                self.client.api.start(container)
        except docker.errors.APIError as err:
            text = explanation(err)
            if remove_on_failure:  # leave nothing in state `created` behind
                remove_quietly(self.client, container)
            raise start_error(service, str(err), text) from None

    def evidence(self, container: str, secrets: tuple[str, ...]) -> str:
        """The last health check output and log lines of a failed container, secrets masked."""
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
        return redact("".join(lines), secrets)


def start_error(service: str, raw: str, text: str) -> DockerError:
    if NVIDIA_REFUSAL in raw or "nvidia" in text.lower():
        return DockerError(
            f"service {service} requests a GPU, but this Docker host has no NVIDIA container runtime "
            f"({NVIDIA_REFUSAL} with capabilities: [[gpu]]). Install the NVIDIA Container Toolkit and "
            "restart Docker, use a CPU profile (`gpus: cpu` where the server allows it), or try the stack "
            "without GPUs with `albert-deploy up --no-gpus`"
        )
    if "port is already allocated" in text or "address already in use" in text:
        return DockerError(
            f"service {service}: a host port it publishes is already in use ({text}); choose another port in the profile"
        )
    return DockerError(f"service {service}: the daemon refused to start it: {text}")
