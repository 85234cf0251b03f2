"""`up` running a starting container's health check itself (converge/probe.py), against a fake
daemon whose exec answers with exit codes a test chooses."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from albert_deploy.catalog import HealthCheck
from albert_deploy.converge import probe


class ExecApi:
    """``exec_create``/``exec_start``/``exec_inspect``: each container's probes exit with the next code
    of its list (the last one repeats), after ``seconds`` each."""

    def __init__(self, codes: dict[str, list[int]], seconds: float = 0.0) -> None:
        self.codes, self.seconds = codes, seconds
        self.runs: list[tuple[str, list[str], float]] = []  # container, argv, when
        self._result: dict[str, int] = {}
        self._lock = threading.Lock()

    def exec_create(self, container: str, argv: list[str], **_: Any) -> dict[str, str]:
        if container not in self.codes:
            raise RuntimeError(f"no such container {container}")
        with self._lock:
            exec_id = f"exec-{len(self.runs)}"
            self.runs.append((container, argv, time.monotonic()))
            codes = self.codes[container]
            self._result[exec_id] = codes.pop(0) if len(codes) > 1 else codes[0]
        return {"Id": exec_id}

    def exec_start(self, exec_id: str) -> bytes:
        time.sleep(self.seconds)
        return b""

    def exec_inspect(self, exec_id: str) -> dict[str, int]:
        return {"ExitCode": self._result[exec_id]}


class Client:
    def __init__(self, api: ExecApi) -> None:
        self.api = api


CHECK = HealthCheck(test=("CMD-SHELL", 'curl -fsS -H "Authorization: Bearer $API_KEY" http://localhost:8000/health'),
                    start_period_s=60, interval_s=3, timeout_s=2)  # fmt: skip


def _until(condition: Any, prober: probe.Prober, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        prober.tick()
        time.sleep(0.01)


def test_the_command_is_what_docker_runs() -> None:
    assert CHECK.argv() == ("/bin/sh", "-c", CHECK.test[1])  # the container's own shell expands $API_KEY
    assert HealthCheck(test=("CMD", "pg_isready", "-h", "127.0.0.1"), start_period_s=1).argv() == (
        "pg_isready", "-h", "127.0.0.1"
    )  # fmt: skip
    assert HealthCheck(test=("NONE",), start_period_s=1).argv() is None
    api = ExecApi({"c1": [0]})
    prober = probe.Prober(Client(api), lambda: None)
    prober.watch("c1", CHECK)
    prober.watch("c2", HealthCheck(test=("NONE",), start_period_s=1, interval_s=10))  # nothing to run
    _until(lambda: "c1" in prober.passed, prober)
    assert [(container, argv) for container, argv, _ in api.runs] == [("c1", ["/bin/sh", "-c", CHECK.test[1]])]


def test_a_check_that_passes_on_the_third_try_is_seen_soon_then_no_more_probes() -> None:
    api = ExecApi({"c1": [1, 1, 0]})
    woken = threading.Event()
    prober = probe.Prober(Client(api), woken.set)
    started = time.monotonic()
    prober.watch("c1", CHECK)
    prober.watch("c1", CHECK)  # a second call changes nothing
    _until(lambda: "c1" in prober.passed, prober)
    assert "c1" in prober.passed and woken.is_set()
    whens = [when - started for _, _, when in api.runs]
    assert len(whens) == 3 and whens[0] >= probe.FIRST_S
    gaps = [b - a for a, b in itertools.pairwise(whens)]
    # Each wait longer than the last by GROWTH: 0.25 s, then 0.375 s, then 0.5625 s.
    assert gaps[0] >= probe.FIRST_S * probe.GROWTH - 0.02 and gaps[1] >= probe.FIRST_S * probe.GROWTH**2 - 0.02
    prober.tick()
    time.sleep(0.1)
    assert len(api.runs) == 3  # passed: never probed again


def test_failures_slow_down_to_the_checks_interval_and_a_gone_container_is_no_pass() -> None:
    api = ExecApi({"c1": [1]})
    prober = probe.Prober(Client(api), lambda: None)
    prober.watch("c1", CHECK)
    prober.watch("gone", CHECK)  # exec_create fails: not a pass, no crash
    _until(lambda: len([r for r in api.runs if r[0] == "c1"]) >= 7, prober, seconds=12)
    whens = [when for container, _, when in api.runs if container == "c1"]
    assert len(whens) >= 7 and not prober.passed
    gaps = [b - a for a, b in itertools.pairwise(whens)]
    cap = min(CHECK.interval_s, probe.LONGEST_S)  # never sparser than Docker's own checks, nor than 2 s
    assert cap - 0.05 <= gaps[-1] <= cap + 0.2 and all(g <= cap + 0.2 for g in gaps)


def test_checks_docker_runs_every_second_or_two_are_left_to_docker() -> None:
    api = ExecApi({"c1": [0]})
    prober = probe.Prober(Client(api), lambda: None)
    prober.watch("c1", HealthCheck(test=("CMD", "true"), start_period_s=1, interval_s=probe.WORTH_IT_S - 1))
    time.sleep(probe.FIRST_S + 0.05)
    prober.tick()
    time.sleep(0.05)
    assert not api.runs and not prober.passed


def test_a_pass_slower_than_the_checks_timeout_is_a_failure_as_for_docker() -> None:
    api = ExecApi({"c1": [0]}, seconds=0.3)
    slow = HealthCheck(test=("CMD", "true"), start_period_s=1, interval_s=probe.WORTH_IT_S, timeout_s=0)
    prober = probe.Prober(Client(api), lambda: None)
    prober.watch("c1", slow)
    _until(lambda: len(api.runs) >= 2, prober)
    assert len(api.runs) >= 2 and not prober.passed


def test_at_most_a_few_probes_run_at_once() -> None:
    running = probe.AT_ONCE + 2
    api = ExecApi({f"c{i}": [0] for i in range(running)}, seconds=0.2)
    prober = probe.Prober(Client(api), lambda: None)
    for i in range(running):
        prober.watch(f"c{i}", CHECK)
    time.sleep(probe.FIRST_S + 0.02)
    prober.tick()
    time.sleep(0.05)
    assert len(api.runs) == probe.AT_ONCE  # the others wait for a free slot
    _until(lambda: len(prober.passed) == running, prober)
    assert len(prober.passed) == running
