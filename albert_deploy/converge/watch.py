"""Watching ``up``'s containers until they are ready: daemon events wake the loop, one listing per
round says where each container stands, and a failure is reported with its evidence."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any

from albert_deploy.converge import probe, reconcile
from albert_deploy.converge.containers import PROJECT
from albert_deploy.converge.engine import exit_code, health_from_status
from albert_deploy.converge.operations import Operations
from albert_deploy.errors import ServiceFailed

POLL_S = 0.5  # fallback only: daemon events wake the loop at once
# The events that change what a listing shows. Not the exec_* events of every health check (several per
# second in a stack): each would wake a listing for nothing. The daemon matches health_status loosely,
# so it stands for "health_status: healthy" too (moby daemon/events/filter.go, matchEvent).
WAKING_EVENTS = ["start", "restart", "die", "kill", "stop", "oom", "pause", "unpause", "destroy", "health_status"]


@dataclass
class Progress:
    action: reconcile.Action
    container: str | None = None
    started: bool = False  # the container runs (or already ran)
    ready: bool = False
    failed: str | None = None
    since: float = 0.0
    ready_at: float = 0.0
    deadline: float = 0.0
    state: str = ""
    health: str | None = None
    created_here: bool = False
    waits: tuple[str, ...] = ()  # started before these are ready: its clock starts when they are


class Watch:
    def __init__(
        self, ops: Operations, progress: dict[str, Progress], timeouts: dict[str, float], secrets: tuple[str, ...]
    ) -> None:
        self.ops, self.progress, self.timeouts, self.secrets = ops, progress, timeouts, secrets
        self.wake = threading.Event()
        self.died: dict[str, str] = {}  # container id -> exit code, from "die" events
        self.prober = probe.Prober(ops.client, self.wake.set)  # the health check, run by `up` itself

    def follow(self) -> Any:
        """Wake the loop on every event of the project's containers that may change their state or health
        (start, health_status, die...); close what this returns to stop."""
        label = f"{PROJECT}={self.ops.project.name}"
        filters = {"label": [label], "type": ["container"], "event": WAKING_EVENTS}
        stream = self.ops.client.api.events(filters=filters, decode=True)

        def read() -> None:
            with contextlib.suppress(Exception):  # ends when the stream is closed
                for event in stream:
                    if event.get("Type") == "container" and event.get("Action") == "die":
                        attributes = (event.get("Actor") or {}).get("Attributes", {})
                        self.died[event.get("id", "")] = attributes.get("exitCode", "?")
                    self.wake.set()

        threading.Thread(target=read, daemon=True).start()
        return stream

    def wait(self) -> None:
        self.wake.wait(POLL_S)
        self.wake.clear()

    def arm(self, service: str) -> None:
        """Start ``service``'s clock, unless its command still waits for services that are not ready
        (``poll`` arms it once they are): that wait is theirs, not its own start."""
        p = self.progress[service]
        if any(w in self.progress and not self.progress[w].ready for w in p.waits):
            return
        p.waits = ()
        p.since = time.monotonic()
        spec = self.ops.project.services[service]
        p.deadline = p.since + reconcile.service_timeout(spec, self.timeouts, service)

    def poll(self) -> list[str]:
        """The services that turned ready; one listing of the project's containers per round, not one
        inspect per container. Raises :class:`ServiceFailed` naming every service that failed."""
        waiting = [(s, p) for s, p in self.progress.items() if p.started and not (p.ready or p.failed) and p.container]
        if not waiting:
            return []
        turned = []
        label = f"{PROJECT}={self.ops.project.name}"
        rows = self.ops.client.api.containers(all=True, filters={"label": [label]})
        by_id = {r["Id"]: r for r in rows}
        for service, p in waiting:
            if p.waits:
                self.arm(service)
            row = by_id.get(p.container or "")
            if row is None:
                p.failed = "its container disappeared"
                continue
            status, health = row.get("State", ""), health_from_status(row.get("Status", ""))
            if (status, health) != (p.state, p.health):
                p.state, p.health = status, health
                self.ops.reporter.update(service, state=status, health=health or "")
            check = self.ops.project.services[service].healthcheck
            if health == "starting" and not p.waits and p.container:
                self.prober.watch(p.container, check)
            passed = health == "starting" and p.container in self.prober.passed
            if status in ("exited", "dead", "restarting") or p.container in self.died:
                p.failed = f"exited with code {self.died.get(p.container or '') or exit_code(row.get('Status', ''))}"
            elif health == "unhealthy":
                p.failed = "its health check failed (unhealthy)"
            elif status == "running" and (health == "healthy" or check is None or passed):
                p.ready, p.ready_at = True, time.monotonic()
                p.health = "healthy" if passed else p.health  # its check passed: what Docker will say next
                turned.append(service)
                self.ops.reporter.update(service, state="ready")
            elif not p.waits and time.monotonic() > p.deadline:
                p.failed = (
                    f"not healthy after {p.deadline - p.since:.0f} s (health: {health or 'none'}); "
                    f"allow more with --timeout {service}=SECONDS"
                )
        failed = [s for s, p in self.progress.items() if p.failed]
        if failed:
            raise self._failure(failed)
        self.prober.tick()
        return turned

    def _failure(self, services: list[str]) -> ServiceFailed:
        parts = []
        for service in services:
            p = self.progress[service]
            self.ops.reporter.update(service, state="failed", detail=p.failed or "")
            evidence = self.ops.evidence(p.container or "", self.secrets)
            parts.append(f"service {service} failed: {p.failed}." + evidence)
        others = (
            "The other services were left as they are; see `albert-deploy status` and `albert-deploy logs SERVICE`."
        )
        return ServiceFailed("\n".join([*parts, others]))

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
