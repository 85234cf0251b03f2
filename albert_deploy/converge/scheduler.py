"""A small dependency-aware executor, after docker-compose 1.x's ``parallel.py``. No Docker here.

Each node is *launched* (its task runs in a worker thread) once every dependency is *ready*; a
node turns ready when the caller's ``poll`` says so (for ``up``: its container is healthy), which
may be well after its launch. Order comes from :class:`graphlib.TopologicalSorter`.
"""

from __future__ import annotations

import graphlib
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

WORKERS = 16


class Tasks(Protocol):
    def launch(self, node: str) -> None:
        """Runs in a worker thread; an exception aborts the run and is raised again."""

    def poll(self) -> Iterable[str]:
        """Main thread: the launched nodes that turned ready since the last call. Raises to abort."""

    def wait(self) -> None:
        """Main thread: block until something may have changed (a task ended, an event came)."""

    def wake(self) -> None:
        """Any thread: end the current ``wait`` (called when a task ends)."""

    def abort(self) -> None:
        """Main thread, after every task in flight has ended: clean up before the error is raised."""


def critical_first(dependencies: Mapping[str, Collection[str]], weight: Mapping[str, float]) -> list[str]:
    """The nodes, those heading the longest chain first: a node's rank is its ``weight`` plus the
    highest rank among the nodes that need it. Launched in that order, what the last node waits for
    longest starts first (list scheduling by critical path). Ties keep their order."""
    needed_by: dict[str, list[str]] = {node: [] for node in dependencies}
    for node, needs in dependencies.items():
        for need in needs:
            needed_by.setdefault(need, []).append(node)
    rank: dict[str, float] = {}
    for node in reversed(list(graphlib.TopologicalSorter(dependencies).static_order())):
        rank[node] = weight.get(node, 0.0) + max((rank[m] for m in needed_by.get(node, ())), default=0.0)
    return sorted(dependencies, key=lambda node: -rank[node])


def execute(
    dependencies: Mapping[str, Collection[str]],
    tasks: Tasks,
    *,
    started: Collection[str] = (),
    first: Collection[str] = (),
    until_started: bool = False,
) -> None:
    """Run every node of ``dependencies`` (node -> the nodes it needs ready), in its key order where
    the graph allows.

    ``started``: nodes already running, never launched (only polled). ``first``: nodes launched
    before any other may be. ``until_started``: return once all are launched, without waiting for
    the last ones to turn ready."""
    position = {node: i for i, node in enumerate(dependencies)}
    sorter = graphlib.TopologicalSorter(dependencies)
    sorter.prepare()  # graphlib.CycleError for a cycle
    running, ready, released, marked = set(started), set[str](), set[str](), set[str]()
    futures: dict[str, Future[None]] = {}
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        try:
            while True:
                for node, future in list(futures.items()):
                    if future.done():
                        del futures[node]
                        future.result()  # raises the task's error
                        running.add(node)
                released.update(sorter.get_ready())
                held = any(f not in running for f in first)
                for node in sorted(released - running - set(futures), key=position.__getitem__):
                    if not held or node in first:
                        futures[node] = pool.submit(tasks.launch, node)
                        futures[node].add_done_callback(lambda _f: tasks.wake())
                ready.update(tasks.poll())
                turned = (ready & released) - marked
                for node in turned:  # graphlib accepts done() only for nodes it has handed out
                    sorter.done(node)
                marked |= turned
                if not futures and len(running) == len(position) and (until_started or len(ready) == len(position)):
                    return
                if not turned:  # something turned ready: launch what waited for it right away
                    tasks.wait()
        except BaseException:
            for future in futures.values():
                future.exception()
            tasks.abort()
            raise
