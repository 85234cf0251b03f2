"""The shared-GPU start schedule on the real daemon: vLLM loads alone, its neighbours together.

docs/memory-model.md ("Which overlaps are safe") says that nothing else may load on a GPU while a
vLLM server loads there (vllm@v0.11.0 vllm/v1/worker/gpu_worker.py:182-195, 259-280), and that TEI
and whisper may load together. The stand-ins bind only once "loaded" (STANDIN_LOAD_SECONDS), as the
real servers do (facts "<kind> listens once loaded"), and report their load window on
``/standin/state``; the test publishes each server's port on 127.0.0.1 to read it.

`up` starts a server's container with its GPU predecessors when nothing of them runs yet: the
container's own command waits until they answer (plan/startup.py), then starts the server. A load
window therefore starts with the server's process, not with its container, and the container's
Docker start is checked separately: it came before the predecessor was ready.

No GPU here: the profile declares one H100 (placement and the start order are computed for it,
exactly as in production) and ``up --no-gpus`` drops only the device requests from the Docker
requests (the README's "a dry run of a GPU profile on a laptop"); ``depends_on`` is untouched.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from tests.helpers import FULL, Deployment, free_port

pytestmark = pytest.mark.docker

VLLMS = ("guillaumetell-7b", "small-llm")
NEIGHBOURS = ("whisper-large-v3-turbo", "bge-reranker-v2-m3", "multilingual-e5-large")
# A second vLLM server outside the catalog, on the same GPU: two vLLMs must load one after the other.
SMALL_LLM = {
    "model": "my-org/small-llm",
    "type": "text-generation",
    "server": "vllm",
    "memory": "4GB",
    "image": "albert-deploy-test/vllm:1",
    "max_model_len": 2048,
    "health_start_period": 10,
}


def _window(port: int) -> tuple[float, float]:
    """(start, ready) in seconds since the epoch: the server process's start and the moment it bound
    its port (the end of its load)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/standin/state", timeout=5) as answer:
        state = json.load(answer)
    return state["started_at"], state["listening_at"]


def _docker_start(d: Deployment, service: str) -> float:
    return datetime.fromisoformat(d.container(service).attrs["State"]["StartedAt"][:26] + "+00:00").timestamp()


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_vllm_loads_alone_while_its_neighbours_load_together(deploy: Callable[..., Deployment]) -> None:
    d = deploy(FULL)  # one declared H100, Albert API 0.2.0, the four catalog models
    d.data["models"].append(dict(SMALL_LLM))
    ports: dict[str, int] = {}
    for name in (*VLLMS, *NEIGHBOURS):
        ports[name] = free_port()
        delay = "1.5" if name in VLLMS else "3"  # each neighbour polls its own wait: starts differ by up to ~1 s
        d.model(name).update(gpus=[0], port=ports[name], env={"STANDIN_LOAD_SECONDS": delay})
    d.edit()

    planned = d.cli("diff", "--no-gpus", "--json")
    assert planned.exit_code == 0, planned.output
    (gpu0,) = json.loads(planned.stdout)["start_order"]
    assert gpu0 == {"gpu": "0", "steps": [["guillaumetell-7b"], ["small-llm"], sorted(NEIGHBOURS)]}

    d.up("--no-gpus")
    windows = {name: _window(port) for name, port in ports.items()}
    first, second = (windows[v] for v in VLLMS)
    assert not _overlap(first, second), f"two vLLM servers loaded at once: {first} {second}"
    for vllm in VLLMS:
        for neighbour in NEIGHBOURS:
            assert not _overlap(windows[vllm], windows[neighbour]), (
                f"{neighbour} loaded {windows[neighbour]} while {vllm} loaded {windows[vllm]}"
            )
    # The neighbours load together: every one started before any finished (3 s loads each).
    starts, ends = zip(*(windows[n] for n in NEIGHBOURS), strict=True)
    assert max(starts) < min(ends), f"TEI and whisper did not load in parallel: {windows}"
    # And not needlessly late: they start right after the last vLLM server is ready, and `up` had
    # started their containers before (the second vLLM's too), their commands waiting inside.
    assert max(starts) - second[1] < 5.0
    for name in ("small-llm", *NEIGHBOURS):
        assert _docker_start(d, name) < first[1], f"up held {name}'s container back until {VLLMS[0]} was ready"
        assert b"GPU start order: waiting for" in d.container(name).logs()
    api: dict[str, Any] = d.api_state()
    assert api["started_at"] > max(ends)  # the API probes its models once, after all are ready
    assert not api["models_down"] and set(api["models_up"]) == {*VLLMS, *NEIGHBOURS}
