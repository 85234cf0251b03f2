"""What ``up`` shows while it works: a live table on a terminal (rich), event lines elsewhere.

The apply side calls ``update(service, ...)`` from several threads; reporters serialise output.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any, Protocol


class Reporter(Protocol):
    def begin(self, services: list[str]) -> None: ...

    def update(
        self, service: str, state: str | None = None, health: str | None = None, detail: str | None = None
    ) -> None: ...

    def end(self) -> None: ...


@dataclass
class _Row:
    state: str = "waiting"
    health: str = ""
    detail: str = ""
    started: float | None = None  # when work on it began
    finished: float | None = None  # when it became ready or failed

    def elapsed(self, now: float) -> str:
        if self.started is None:
            return ""
        return f"{(self.finished or now) - self.started:5.1f}s"


_DONE = {"healthy", "running", "unchanged", "failed", "removed", "started"}


@dataclass
class _Base:
    stream: IO[str] = field(default_factory=lambda: sys.stdout)
    rows: dict[str, _Row] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    t0: float = field(default_factory=time.monotonic)

    def _apply(self, service: str, state: str | None, health: str | None, detail: str | None) -> bool:
        row = self.rows.setdefault(service, _Row())
        before = (row.state, row.health, row.detail)
        now = time.monotonic()
        if state is not None:
            if row.started is None and state not in ("waiting", "unchanged", "created"):
                row.started = now
            row.state = state
        if health is not None:
            row.health = health
        if detail is not None:
            row.detail = detail
        ready = row.health == "healthy" or (row.state in _DONE and row.health in ("", "healthy"))
        if row.state == "failed" or ready:
            row.finished = row.finished or now
        return before != (row.state, row.health, row.detail)


class EventLines(_Base):
    """One line per change: for logs, CI and pipes."""

    def begin(self, services: list[str]) -> None:
        for name in services:
            self.rows.setdefault(name, _Row())

    def update(
        self, service: str, state: str | None = None, health: str | None = None, detail: str | None = None
    ) -> None:
        with self.lock:
            if not self._apply(service, state, health, detail):
                return
            row = self.rows[service]
            text = row.state + (f" ({row.health})" if row.health else "") + (f": {row.detail}" if row.detail else "")
            self.stream.write(f"[{time.monotonic() - self.t0:6.1f}s] {service}: {text}\n")
            self.stream.flush()

    def end(self) -> None:
        pass


@dataclass
class LiveTable(_Base):
    """One row per service, redrawn in place by rich with elapsed times ticking (rich is imported
    here only: ``render`` never pays for it)."""

    def __post_init__(self) -> None:
        self._live: Any = None

    def begin(self, services: list[str]) -> None:
        from rich.console import Console
        from rich.live import Live

        for name in services:
            self.rows.setdefault(name, _Row())
        console = Console(file=self.stream, force_terminal=True, highlight=False)
        self._live = Live(get_renderable=self._table, console=console, refresh_per_second=4)
        self._live.start()

    def update(
        self, service: str, state: str | None = None, health: str | None = None, detail: str | None = None
    ) -> None:
        with self.lock:
            changed = self._apply(service, state, health, detail)
        if changed and self._live is not None:  # outside the lock: refreshing takes it to draw
            self._live.refresh()

    def end(self) -> None:
        if self._live is not None:
            self._live.stop()

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None, show_header=False, pad_edge=False)
        for justify in ("left", "left", "left", "right", "left"):
            table.add_column(justify=justify, no_wrap=True)
        now = time.monotonic()
        with self.lock:
            for name, row in self.rows.items():
                table.add_row(name, row.state, row.health, row.elapsed(now), row.detail[:120])
        return table


class Silent:
    def begin(self, services: list[str]) -> None:
        pass

    def update(
        self, service: str, state: str | None = None, health: str | None = None, detail: str | None = None
    ) -> None:
        pass

    def end(self) -> None:
        pass


def reporter_for(stream: IO[str]) -> Reporter:
    return LiveTable(stream) if stream.isatty() else EventLines(stream)
