"""The per-GPU start order: computed once (plan/order.py), read by compose, the runbook and `diff`.

vLLM loads alone on each of its GPUs; TEI and whisper load together (docs/memory-model.md)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from unittest import mock

import pytest

from albert_deploy.errors import RenderError
from albert_deploy.plan.order import chained, gpu_start_order, waits_for
from albert_deploy.plan.spec import GpuAssignment, GpuStartOrder, Service

STANDINS = Path(__file__).resolve().parent / "standins"


def _server(name: str, *devices: str, kind: str = "vllm", after: tuple[str, ...] = ()) -> Service:
    gpu = GpuAssignment(device_ids=devices) if devices else None
    return Service(name=name, role="model", image="x", gpu=gpu, depends_on=after, server=kind)


def test_vllm_servers_load_one_at_a_time_and_spanning_servers_wait_on_each_gpu() -> None:
    services = [
        _server("small", "1"),
        _server("split", "0", "1"),  # tensor parallel over both GPUs
        _server("big", "0"),
        _server("cpu"),
        _server("ten", "10"),
        _server("two", "2", after=("redis",)),
    ]
    memory = {"small": 1, "split": 5, "big": 9, "ten": 1, "two": 1}
    order = gpu_start_order(services, memory)
    assert order == (
        GpuStartOrder("0", (("big",), ("split",))),
        GpuStartOrder("1", (("split",), ("small",))),
        GpuStartOrder("2", (("two",),)),
        GpuStartOrder("10", (("ten",),)),  # natural order: 2 before 10
    )
    deps = {s.name: s.depends_on for s in chained(services, order)}
    assert deps == {"small": ("split",), "split": ("big",), "big": (), "cpu": (), "ten": (), "two": ("redis",)}


def test_tei_and_whisper_load_together_once_the_vllm_servers_of_their_gpu_are_healthy() -> None:
    services = [
        _server("e5", "0", kind="tei"),
        _server("llm", "0"),
        _server("whisper", "0", kind="whisper"),
        _server("rerank", "0", kind="tei", after=("redis",)),
        _server("llm2", "0"),
        _server("alone-tei", "1", kind="tei"),
        _server("alone-whisper", "1", kind="whisper"),
    ]
    # The neighbours' budgets are larger than one vLLM's: the kind decides, not the size.
    memory = {"llm": 20, "llm2": 10, "e5": 30, "whisper": 40, "rerank": 30, "alone-tei": 1, "alone-whisper": 2}
    order = gpu_start_order(services, memory)
    assert order == (
        GpuStartOrder("0", (("llm",), ("llm2",), ("e5", "rerank", "whisper"))),
        GpuStartOrder("1", (("alone-tei", "alone-whisper"),)),  # no vLLM: all at once
    )
    assert order[0].services == ("llm", "llm2", "e5", "rerank", "whisper")
    assert order[0].text(" -> ") == "llm -> llm2 -> e5 + rerank + whisper"
    deps = {s.name: s.depends_on for s in chained(services, order)}
    assert deps == {
        "llm": (), "llm2": ("llm",), "e5": ("llm2",), "whisper": ("llm2",), "rerank": ("redis", "llm2"),
        "alone-tei": (), "alone-whisper": (),
    }  # fmt: skip


def test_a_neighbour_waits_for_every_vllm_server_of_each_of_its_gpus() -> None:
    services = [_server("a", "0"), _server("b", "1"), _server("t", "0", "1", kind="tei")]
    order = gpu_start_order(services, {"a": 2, "b": 1})
    assert waits_for(order) == {"t": ["a", "b"]}


def test_equal_budgets_start_by_name() -> None:
    order = gpu_start_order([_server("b", "0"), _server("a", "0")], {})
    assert order == (GpuStartOrder("0", (("a",), ("b",))),)


def test_a_cycle_would_be_reported_as_an_internal_error() -> None:
    crossing = [GpuStartOrder("0", (("a",), ("b",))), GpuStartOrder("1", (("b",), ("a",)))]
    cycle = pytest.raises(RenderError, match="internal error: GPU start order has a cycle")
    with mock.patch("albert_deploy.plan.order.GpuStartOrder", side_effect=crossing), cycle:
        gpu_start_order([_server("a", "0", "1"), _server("b", "0", "1")], {})


def _stand_in_window(wait_before_exec: float) -> tuple[float, dict[str, float]]:
    """Spawn a vLLM stand-in loading for 1.5 s, behind an ``sh`` that first waits (as the GPU
    start-order wait does); return when it was spawned and its /standin/state."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "STANDIN_LOAD_SECONDS": "1.5"}
    server = [sys.executable, str(STANDINS / "model_server.py"), "vllm", "--host", "127.0.0.1", "--port", str(port)]
    # The start-order wait polls with curl between sleeps; a short busy child stands for curl here.
    poll = f"{sys.executable} -c 'sum(range(3_000_000))'; sleep {wait_before_exec}; " if wait_before_exec else ""
    argv = ["sh", "-c", poll + 'exec "$@"', "wait", *server]
    spawned = time.time()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        state = None
        while state is None and time.time() - spawned < 20:
            url = f"http://127.0.0.1:{port}/standin/state"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
                state = json.load(answer)
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    assert state is not None, "the stand-in never answered"
    return spawned, state


def test_a_stand_in_load_time_counts_from_its_process_start() -> None:
    """STANDIN_LOAD_SECONDS (used by the cold-start test and benchmark): the stand-in binds that
    long after its process started, its interpreter's own start included, as a real server's load
    time is measured from its start; /standin/state reports the window."""
    spawned, state = _stand_in_window(0)
    tick = 0.02  # a process's start time is kept in clock ticks (10 ms)
    assert spawned - tick <= state["started_at"] < state["listening_at"]
    assert state["listening_at"] - spawned >= 1.5 - tick
    # Counted from the process's start, not from the end of the stand-in's own start-up (imports, flags).
    assert state["listening_at"] - state["started_at"] < 1.5 + 0.1


def test_a_wait_before_the_servers_exec_is_not_load_time() -> None:
    """A container of a GPU start-order step waits in the same process before it execs the server
    (plan/startup.py); only the server's own start counts as load, as it holds no GPU memory before."""
    spawned, state = _stand_in_window(2)
    assert state["started_at"] >= spawned + 2
    assert state["listening_at"] - state["started_at"] >= 1.5 - 0.02
    assert state["listening_at"] - spawned >= 3.5 - 0.02
