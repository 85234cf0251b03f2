"""`up`'s own look at a starting container: it runs the container's health-check command itself.

Docker runs a container's first health check one whole interval after its start (10 s by default;
Docker 20.10 has no ``start_interval``), and then once per interval. A database ready in two
seconds is therefore called healthy after ten, and each step of a chain of ``depends_on`` waits
that long again. ``up`` runs the same command in the container (``docker exec``: the container's
environment, so ``$API_KEY`` in the command means what it means to Docker) soon after the start,
then less and less often, up to every 2 s (or the check's own interval, if shorter). One success is what Docker calls
healthy (no success threshold: moby daemon/health.go, ``handleProbeResult``), so once the command
passes, the service counts as ready and its dependents may start; Docker's own status follows at
its next check.

Probes run in daemon threads, a few at a time: one that hangs never holds ``up`` back (Docker's
own verdict still comes), and it ends with the process. Checks that Docker already runs every
second or two are left to Docker (``WORTH_IT_S``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from albert_deploy.catalog import HealthCheck

FIRST_S = 0.25  # the first probe, after the start
GROWTH = 1.5  # each next probe waits this much longer, up to the check's interval or LONGEST_S
LONGEST_S = 2.0  # a long load (vLLM: minutes) is seen within 2 s of its end, for one exec per 2 s
AT_ONCE = 4  # probes running at the same time
# Docker's own checks at most this far apart: a probe would gain less than it costs (an exec in the
# container: measured here, six containers starting on 2 cores with 1 s checks came up 2 s later).
WORTH_IT_S = 3


class Prober:
    """Probes the containers it is given until each passes once; ``wake`` is called after each probe."""

    def __init__(self, client: Any, wake: Callable[[], None]) -> None:
        self.client, self.wake = client, wake
        self.passed: set[str] = set()
        self._due: dict[
            str, tuple[float, float, list[str], HealthCheck]
        ] = {}  # container -> (when, delay, argv, check)
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(AT_ONCE)

    def watch(self, container: str, check: HealthCheck | None) -> None:
        """Probe ``container`` from now on (once: a second call changes nothing)."""
        argv = list(check.argv() or ()) if check else None
        if check is None or not argv or check.interval_s < WORTH_IT_S:
            return
        with self._lock:
            if container not in self._due and container not in self.passed:
                self._due[container] = (time.monotonic() + FIRST_S, FIRST_S, argv, check)

    def tick(self) -> None:
        """Start the probes that are due (and have a free slot); never blocks."""
        now = time.monotonic()
        with self._lock:
            due = [c for c, (when, *_) in self._due.items() if when <= now and c not in self._running]
        for container in due:
            if not self._slots.acquire(blocking=False):
                return
            with self._lock:
                self._running.add(container)
            threading.Thread(target=self._probe, args=(container,), daemon=True).start()

    def _probe(self, container: str) -> None:
        try:
            with self._lock:
                entry = self._due.get(container)
            if entry is None:
                return
            _, delay, argv, check = entry
            if self._passes(container, argv, check.timeout_s):
                with self._lock:
                    self.passed.add(container)
                    self._due.pop(container, None)
            else:
                later = min(delay * GROWTH, float(check.interval_s), LONGEST_S)
                with self._lock:
                    if container in self._due:
                        self._due[container] = (time.monotonic() + later, later, argv, check)
        finally:
            with self._lock:
                self._running.discard(container)
            self._slots.release()
            self.wake()

    def _passes(self, container: str, argv: list[str], timeout_s: float) -> bool:
        """Exit 0 within the check's timeout, as Docker requires (a slower pass is a failure to it)."""
        started = time.monotonic()
        try:
            # Attached (its output dropped): exec_start then returns once the command has ended.
            exec_id = self.client.api.exec_create(container, argv, stdout=True, stderr=True)["Id"]
            self.client.api.exec_start(exec_id)
            code = self.client.api.exec_inspect(exec_id).get("ExitCode")
        except Exception:  # not running yet, gone, or the daemon refused: Docker's own check decides
            return False
        return code == 0 and time.monotonic() - started <= timeout_s
