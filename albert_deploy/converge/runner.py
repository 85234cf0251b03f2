"""The Docker side of ``up`` and ``diff``: converge a project through the Docker SDK.

``reconcile`` decides; ``scheduler`` orders (no Docker there); ``operations`` acts on one service;
this module ties them together and watches containers until they are ready. Connection, network
and volumes: ``engine``; images: ``images``; down, status, logs: ``stackops``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from albert_deploy.converge import containers, reconcile, rolling, scheduler
from albert_deploy.converge.desired import Project, config_hash
from albert_deploy.converge.engine import (
    ensure_network,
    ensure_volumes,
    list_containers,
    remove_network,
    remove_quietly,
    stop_and_remove,
)
from albert_deploy.converge.images import PARALLEL_PULLS, local_images, pull_missing
from albert_deploy.converge.operations import Operations
from albert_deploy.converge.progress import Reporter, Silent
from albert_deploy.converge.watch import Progress, Watch
from albert_deploy.errors import DockerError
from albert_deploy.plan.replicas import Balancer

CHANGING = (reconcile.CREATE, reconcile.RECREATE)


def desired_state(project: Project, image_ids: Mapping[str, str | None]) -> list[reconcile.Desired]:
    return [
        reconcile.Desired(
            service=name,
            config_hash=config_hash(project, name),
            parts=reconcile.service_parts(project, name),
            image=spec.image,
            image_id=image_ids.get(spec.image),
            depends_on=spec.depends_on,
            probes_once=spec.probes_once,
        )
        for name, spec in project.services.items()
    ]


def actions(client: Any, project: Project, locked_ids: Mapping[str, str] | None = None) -> list[reconcile.Action]:
    """What ``up`` would do, touching nothing."""
    ids, _ = local_images(client, {s.image for s in project.services.values()}, locked_ids)
    return reconcile.plan_actions(desired_state(project, ids), list_containers(client, project.name))


@dataclass
class UpResult:
    project: str
    actions: list[reconcile.Action]
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    verified: frozenset[str] = frozenset()  # containers whose health check `up` ran and saw pass


def up(
    client: Any,
    project: Project,
    *,
    timeouts: Mapping[str, float] | None = None,
    detach: bool = False,
    reporter: Reporter | None = None,
    secrets: tuple[str, ...] = (),
    locked_ids: Mapping[str, str] | None = None,
    balancers: tuple[Balancer, ...] = (),
    reload: rolling.Reloader | None = None,
    parallel_pulls: int = PARALLEL_PULLS,
) -> UpResult:
    """Converge ``project``: network, volumes, images, then containers in dependency order; the
    replicas behind a balancer one at a time (``rolling``; ``reload``: how to reload a balancer).

    ``locked_ids``: pinned reference -> locked image id (``images.local_images``): a loaded bundle's
    images run by id, with the same labels and config hash as by their reference. Missing images are
    pulled ``parallel_pulls`` at a time, before any container changes: each service's health timeout
    starts when it starts, after every pull."""
    t0 = time.monotonic()
    reporter = reporter or Silent()
    reconcile.start_order({s: spec.depends_on for s, spec in project.services.items()})  # refuses cycles
    ids, run_as = local_images(client, {spec.image for spec in project.services.values()}, locked_ids)
    existing = list_containers(client, project.name)
    planned = reconcile.plan_actions(desired_state(project, ids), existing)
    changing = {a.service for a in planned if a.kind in CHANGING}
    missing = sorted(i for i, v in ids.items() if v is None and any(
        project.services[s].image == i for s in changing))  # fmt: skip
    reporter.begin([a.service for a in planned])
    try:
        # Before anything changes: an unpullable image leaves the stack as it was.
        users = {image: [s for s, c in project.services.items() if c.image == image] for image in missing}
        ids.update(pull_missing(client, users, reporter, parallel_pulls))
        if missing:  # a pulled image may equal what already runs
            planned = reconcile.plan_actions(desired_state(project, ids), existing)
        network_created = ensure_network(client, project.name)
        ensure_volumes(client, project)
        run = Run(Operations(client, project, reporter, ids, run_as), planned, dict(timeouts or {}), secrets)
        if balancers:
            if reload is None:
                raise ValueError("runner.up: balancers need a reload")
            run.rolling = rolling.Rolling(balancers, reload)
        try:
            run.execute(detach)
        except DockerError:
            if network_created and not list_containers(client, project.name):
                remove_network(client, project.name)
            raise
    finally:
        reporter.end()
    return UpResult(
        project.name, planned, run.watch.summary(), time.monotonic() - t0, frozenset(run.watch.prober.passed)
    )


class Run(scheduler.Tasks):
    """One ``up``: the scheduler's tasks. Launching a service creates (ahead, when it must wait),
    sets the old container aside, starts, and puts the old one back if that fails."""

    def __init__(
        self, ops: Operations, planned: list[reconcile.Action], timeouts: dict[str, float], secrets: tuple[str, ...]
    ) -> None:
        self.ops, self.reporter, self.project = ops, ops.reporter, ops.project
        self.removals = [a for a in planned if a.kind == reconcile.REMOVE]
        progress = {a.service: Progress(a, container=a.container) for a in planned if a.kind != reconcile.REMOVE}
        self.watch = Watch(ops, progress, timeouts, secrets)
        self.prepared: dict[str, Future[str | None]] = {}
        self.rolling = rolling.Rolling((), lambda _b, _d: None)

    def execute(self, detach: bool) -> None:
        project, progress = self.project, self.watch.progress
        chains = {s: list(spec.depends_on) for s, spec in project.services.items()}
        # Launched longest chain first (health budgets as the weights): vLLM before the databases.
        budgets = {s: reconcile.service_timeout(spec, {}, s) for s, spec in project.services.items()}
        deps = {s: chains[s] for s in scheduler.critical_first(chains, budgets)}
        for service, waited in self._waiting_inside().items():
            deps[service] = [d for d in deps[service] if d not in waited]
            progress[service].waits = waited
        for service, previous in self.rolling.order({s: p.action for s, p in progress.items()}).items():
            deps[service] += previous  # one replica at a time, each once the previous is healthy
        unchanged = [s for s in project.services if progress[s].action.kind == reconcile.NOTHING]
        # The GPU services free to start at once start first: on a host without the NVIDIA runtime the
        # refusal comes before anything else was started (and they do not hold the databases back).
        gpu = [s for s, c in project.services.items() if c.gpu and s not in unchanged and not deps[s]]
        events = self.watch.follow()
        try:
            with ThreadPoolExecutor(max_workers=scheduler.WORKERS) as pool:
                for future in [pool.submit(self._remove, a) for a in self.removals]:
                    future.result()
                for service in unchanged:
                    progress[service].started = True
                    self.watch.arm(service)
                    self.reporter.update(service, state="unchanged")
                for service, p in progress.items():
                    if p.action.kind in CHANGING and deps[service]:
                        # Create what must wait (the API) now: only its start remains on the critical path.
                        self.prepared[service] = pool.submit(self._prepare, service)
                scheduler.execute(deps, self, started=unchanged, first=gpu, until_started=detach)
            self.rolling.finish()
        finally:
            with contextlib.suppress(Exception):
                events.close()

    def _waiting_inside(self) -> dict[str, tuple[str, ...]]:
        """Per service, the dependencies it starts with rather than after: those its own command waits
        for (plan/startup.py), when neither it nor they have a container that could answer. Docker's
        health-check interval then leaves the critical path. A container being replaced keeps serving
        until they are healthy, and a dependency being replaced could answer from its old container."""
        kind = {s: p.action.kind for s, p in self.watch.progress.items()}
        fresh = (reconcile.CREATE, reconcile.START)
        waiting = {}
        for service, spec in self.project.services.items():
            waited = tuple(d for d in spec.waits_inside if kind.get(d) in fresh)
            if kind.get(service) in fresh and waited:
                waiting[service] = waited
        return waiting

    # scheduler.Tasks

    def poll(self) -> Iterable[str]:
        return self.watch.poll()

    def wait(self) -> None:
        self.watch.wait()

    def wake(self) -> None:
        self.watch.wake.set()

    def abort(self) -> None:
        """Remove what this run created and never started, and what it started with services it
        waits for that are not ready: it would start later, without them (its command holds nothing
        yet, so it is killed, not stopped; one that existed stopped is stopped again)."""
        for future in self.prepared.values():
            future.exception()
        for p in self.watch.progress.values():
            waiting = p.started and bool(p.waits) and not p.ready
            if p.container and p.created_here and (waiting or not p.started):
                remove_quietly(self.ops.client, p.container)
            elif p.container and waiting:
                with contextlib.suppress(Exception):
                    self.ops.client.api.kill(p.container)

    def launch(self, service: str) -> None:
        p = self.watch.progress[service]
        action = p.action
        for duplicate in action.duplicates:
            stop_and_remove(self.ops.client, duplicate)
        future = self.prepared.get(service)
        ready = future.result() if future else None
        old = None
        if action.kind == reconcile.RECREATE:
            self.reporter.update(service, state="recreating", detail=action.reason)
            self.rolling.before_stop(service)  # out of its balancer's rotation, its requests done
            old = self.ops.set_aside(service, action.container or "")
        try:
            if ready and action.kind == reconcile.RECREATE:
                self.ops.rename(service, ready, containers.container_name(self.project.name, service))
            if ready:
                p.container = ready
            elif action.kind in CHANGING:
                self.reporter.update(service, state="creating", detail="")
                p.container = self.ops.create(service)
                p.created_here = True
            self.reporter.update(service, state="starting", detail="")
            unpause = action.kind == reconcile.START and action.reason == "container is paused"
            remove = p.created_here or action.kind == reconcile.START
            self.ops.start(service, p.container or "", unpause, remove)
        except BaseException:
            if old is not None:
                if p.container and p.container != old.id and p.created_here:
                    remove_quietly(self.ops.client, p.container)
                p.container, p.created_here = old.id, False
                self.ops.put_back(service, old)
            raise
        if old is not None:  # the new container runs: only now does the old one go
            remove_quietly(self.ops.client, old.id)
        self.watch.arm(service)
        p.started = True
        self.reporter.update(service, state="started")

    def _remove(self, action: reconcile.Action) -> None:
        self.reporter.update(action.service, state="removing", detail=action.reason)
        stop_and_remove(self.ops.client, action.container or "")
        self.reporter.update(action.service, state="removed", detail="")

    def _prepare(self, service: str) -> str | None:
        """Create the container ahead of its start; a recreated one under a temporary name."""
        p = self.watch.progress[service]
        try:
            p.container = self.ops.create(service, "-next" if p.action.kind == reconcile.RECREATE else "")
        except DockerError:
            return None  # launch tries again, and reports the error at the right time
        p.created_here = True
        self.reporter.update(service, state="created")
        return p.container
