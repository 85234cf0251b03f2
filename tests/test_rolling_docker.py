"""A model with replicas: `up` replaces them one at a time, with no failed request (issue 11, part 3).

Real daemon, stand-in API and vLLM servers, and the real nginx (Debian's) as the replicas'
balancer. A client loop sends chat completions through the API while `up` applies a change of the
model's `args`; every answer that is not a 200 is a failed request. The stand-in vLLM takes
STANDIN_RESPONSE_DELAY per completion, so that requests are in flight whenever a replica stops,
and it exits at once on SIGTERM (in-flight requests are cut): only draining saves them.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers import Deployment

pytestmark = pytest.mark.docker

MODEL = "guillaumetell-7b"
SERVED = "AgentPublic/guillaumetell-7b"
REPLICAS = ["guillaumetell-7b-1", "guillaumetell-7b-2"]
CLIENTS = 4  # concurrent request loops


def _replicated(deploy: Callable[..., Deployment], release: str = "0.2.0") -> Deployment:
    d = deploy()
    d.data["api"]["release"] = release
    d.data["gpus"] = {"count": 2, "memory": "80GB", "name": "NVIDIA H100 80GB HBM3"}
    d.data["images"]["balancer"] = "albert-deploy-test/nginx:1"
    d.data["models"].append(
        {
            "model": "AgentPublic/guillaumetell-7b",
            "image": "albert-deploy-test/vllm:1",
            "gpus": 1,
            "replicas": 2,
            "max_model_len": 4096,
            "health_start_period": 10,
            "args": ["--seed", "1"],
            # Each replica takes 2 s to load and 0.2 s per answer.
            "env": {"STANDIN_START_DELAY": "2", "STANDIN_RESPONSE_DELAY": "0.2"},
        }
    )
    d.edit()
    return d


class Load:
    """CLIENTS loops of chat completions through the API until stopped; every answer recorded."""

    def __init__(self, port: int, key: str, model: str) -> None:
        self.port, self.key, self.model = port, key, model
        self.results: list[tuple[float, int, str]] = []  # (time, status or 0 for no answer, detail)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    def _loop(self) -> None:
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": "bonjour"}], "max_tokens": 5})
        while not self.stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                conn.request("POST", "/v1/chat/completions", body,
                             {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})  # fmt: skip
                answer = conn.getresponse()
                data = answer.read()
                detail = json.loads(data).get("system_fingerprint") or "" if answer.status == 200 else data[:200]
                self.results.append((time.monotonic(), answer.status, str(detail)))
            except (OSError, http.client.HTTPException, ValueError) as err:
                self.results.append((time.monotonic(), 0, repr(err)))
            finally:
                conn.close()

    def failed(self) -> list[tuple[float, int, str]]:
        return [r for r in self.results if r[1] != 200]


def _env(d: Deployment) -> dict[str, str]:
    lines = (d.out / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


@pytest.mark.parametrize("release", ["0.2.0", "0.0.3"])
def test_rolling_update_fails_no_request(
    deploy: Callable[..., Deployment], monkeypatch: pytest.MonkeyPatch, release: str
) -> None:
    d = _replicated(deploy, release)
    load, second, t_done = _update_under_load(d, f"rolling update, Albert API {release}")
    assert load.failed() == [], load.failed()[:5]
    _check_one_at_a_time(d, load, second, t_done)
    if release == "0.2.0":
        # The control, on the same stack: the drain step is what saves the requests (the balancer
        # alone does not). The same kind of update again, with the drain skipped, fails some.
        from albert_deploy.converge import rolling

        monkeypatch.setattr(rolling.Rolling, "before_stop", lambda self, service: None)
        undrained, _, _ = _update_under_load(d, "without draining", args=["--seed", "3"])
        assert len(undrained.failed()) > 0


def _check_one_at_a_time(d: Deployment, load: Load, second: dict[str, Any], t_done: float) -> None:
    assert len(load.results) > 50  # requests were in flight all along (4 loops, 0.2 s each)

    actions = {a["service"]: a["action"] for a in second["actions"]}
    assert {s: actions.pop(s) for s in (*REPLICAS, MODEL, "api")} == {
        **dict.fromkeys(REPLICAS, "recreate"),
        MODEL: "nothing",
        "api": "nothing",
    }
    assert set(actions.values()) == {"nothing"}
    new = {r: d.container(r) for r in REPLICAS}
    # One at a time: the second replica started only once the first new one was healthy (2 s load).
    started = {r: _started(new[r].attrs) for r in REPLICAS}
    assert started[REPLICAS[1]] - started[REPLICAS[0]] >= 2.0, started
    # Both new replicas answer after the update, and the balancer has every replica in rotation.
    after = Counter(r[2] for r in load.results if r[0] > t_done)
    assert {new[r].attrs["Config"]["Hostname"] for r in REPLICAS} <= set(after), after
    conf = _exec(d.container(MODEL), "cat /tmp/nginx.conf")
    assert " down;" not in conf and all(f"server {r}:8000" in conf for r in REPLICAS)


def _update_under_load(
    d: Deployment, what: str, args: tuple[str, ...] | list[str] = ("--seed", "2")
) -> tuple[Load, dict[str, Any], float]:
    """`up` (a no-op when the stack already runs), then `up` after a change of the replicated
    model's args, under load."""
    first = d.up("--no-gpus")
    assert {s["service"]: s["health"] for s in first["services"]}[MODEL] == "healthy"
    assert {s["service"]: s["role"] for s in first["services"]}[MODEL] == "balancer"
    # The API lists the model once (0.2.0 by its name, 0.0.3 by the id its server reports); its one
    # client, or URL, is the balancer.
    model = MODEL if d.data["api"]["release"] == "0.2.0" else SERVED
    assert model in d.api_state()["models_up"]
    old = {r: d.container(r).id for r in REPLICAS}
    kept = {s: d.container(s).id for s in (MODEL, "api")}

    d.model(MODEL)["args"] = list(args)
    d.edit()
    with Load(d.port, _env(d).get("MASTER_KEY", "none").strip('"'), model) as load:
        time.sleep(2)  # requests flow before the update starts
        t_up = time.monotonic()
        second = d.up("--no-gpus")
        t_done = time.monotonic()
        time.sleep(2)  # and after it
    failed = load.failed()
    during = [r for r in load.results if t_up <= r[0] <= t_done]
    print(f"\n{what}: {len(load.results)} requests through the API ({len(during)} during `up`, "
          f"{t_done - t_up:.1f} s), {len(failed)} failed")  # fmt: skip
    assert len(during) > 20  # the update ran under load
    assert {s: d.container(s).id for s in (MODEL, "api")} == kept  # neither the API nor the balancer restarted
    assert all(d.container(r).id != old[r] for r in REPLICAS)
    return load, second, t_done


def _started(attrs: dict[str, Any]) -> float:
    from datetime import datetime

    text = attrs["State"]["StartedAt"]
    return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()


def _exec(container: Any, command: str) -> str:
    code, out = container.exec_run(["/bin/sh", "-c", command])
    assert code == 0, out
    return str(out.decode())
