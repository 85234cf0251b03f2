"""``up`` on a model with replicas: replace them one at a time, each out of rotation first.

For every balancer that stays (plan/replicas.py), the replicas ``up`` recreates are chained: each
waits until the previous one is healthy (an extra dependency for the scheduler). Before a replica is
stopped, its balancer is reloaded with it marked ``down`` and ``up`` waits until nginx's old workers
have finished their requests (``replicas.DRAIN``), so no request is in flight on it, and none is
sent to it, when it stops. At the end of a run every replica goes back in rotation (a reload only
where the running config differs). A balancer created or recreated in this run is not drained:
it starts with every replica in rotation.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

from albert_deploy.converge import reconcile
from albert_deploy.plan.replicas import Balancer

# Gives a balancer its config with one replica out of rotation (None: every replica in); on the
# daemon: ``stackops.balancer_reloader``.
Reloader = Callable[[Balancer, "str | None"], None]


class Rolling:
    def __init__(self, balancers: tuple[Balancer, ...], reload: Reloader) -> None:
        self.balancers, self.reload = balancers, reload
        self.drain_before: dict[str, Balancer] = {}  # replica -> its balancer, drained before it stops
        self.running: list[Balancer] = []  # balancers left running: their rotation is restored at the end

    def order(self, actions: Mapping[str, reconcile.Action]) -> dict[str, list[str]]:
        """Extra dependencies: each recreated replica waits for the previous recreated one."""
        extra: dict[str, list[str]] = {}
        for b in self.balancers:
            if b.service not in actions or actions[b.service].kind != reconcile.NOTHING:
                continue  # (re)started with its full config
            self.running.append(b)
            replaced = [r for r in b.replicas if r in actions and actions[r].kind == reconcile.RECREATE]
            for previous, replica in itertools.pairwise(replaced):
                extra[replica] = [previous]
            self.drain_before.update(dict.fromkeys(replaced, b))
        return extra

    def before_stop(self, service: str) -> None:
        balancer = self.drain_before.get(service)
        if balancer is not None:
            self.reload(balancer, service)

    def finish(self) -> None:
        for b in self.running:
            self.reload(b, None)
