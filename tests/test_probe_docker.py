"""`up` runs a starting container's health check itself (converge/probe.py), on the real daemon.

With checks every 60 s, Docker's first verdict on any container comes a minute after its start;
compose's `up --wait` and a `depends_on: service_healthy` wait for it. `up` runs the same commands
in the containers (pg_isready, redis-cli, the API's urlopen...) and starts the API, then returns,
while Docker still says "health: starting" everywhere. The API then answers for real.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

import pytest

from tests.helpers import Deployment

pytestmark = pytest.mark.docker


def test_up_does_not_wait_for_dockers_first_check(deploy: Callable[..., Deployment]) -> None:
    d = deploy(health_interval=60)
    result = d.up()
    assert {s["service"]: s["health"] for s in result["services"]} == {
        s["service"]: "healthy" for s in result["services"]
    }
    # Docker has not checked anything yet: every verdict above is from the checks `up` ran itself.
    statuses = {name: d.container(name).attrs["State"]["Health"]["Status"] for name in d.ids()}
    assert set(statuses.values()) == {"starting"}, statuses
    key = next(
        line.split("=", 1)[1] for line in (d.out / ".env").read_text().splitlines() if line.startswith("MASTER_KEY=")
    )
    request = urllib.request.Request(f"http://127.0.0.1:{d.port}/v1/models", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert {m["id"] for m in json.load(answer)["data"]} == {"multilingual-e5-large"}
    # And the next `up` takes them as the first left them, without waiting for Docker either.
    again = d.cli("up", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["changes"] == 0
