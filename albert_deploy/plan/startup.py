"""What brings the whole stack back when Docker starts every container at once, with no operator.

``depends_on`` orders ``albert-deploy up`` and ``docker compose up`` only. After a reboot or a daemon
restart, Docker starts every container with a restart policy at the same moment, so the order must
live inside the containers themselves (compose and ``up``; Kubernetes has its own probes):

- The API waits, before its own start command, until every model server and database it depends
  on answers. Albert 0.2.0 probes each model once, in its lifespan, swallows a failed probe and
  logs ``skip model <id> (0/N clients)`` without ever trying again
  (etalab-ia/albert-api@0.2.0 app/utils/lifespan.py:36-55); 0.0.3 skips an unavailable model too
  (etalab-ia/albert-api@0.0.3 app/clients/_modelclients.py:179-181). So a language model still
  loading when the API starts would be missing until someone restarts the API. The wait asks the
  path the release's probe asks (``PROBE_PATH``) with the model's key, and each database's port.
  It is bounded (``ready_within``): a model server that never comes back must not keep the API,
  and every other model, down; the API then starts without it and says which one is missing.
  Both images have python3 (``FROM python:3.12-slim``, app/Dockerfile:28 at 0.2.0, :1 at 0.0.3).
- A model server with a predecessor in its GPU's start order (plan/order.py) waits until that
  predecessor answers, then runs its image's entrypoint: vLLM checks free memory against its share
  when it starts and counts what a neighbour allocates meanwhile as its own (docs/upstream-facts.md
  §1.2). vLLM, TEI and whisper-openai-api each bind their port only once loaded (§1.3, §2.1, §2.2),
  so an answer means "loaded". All three images have sh and curl (catalog health checks).
- Restart policies stay ``unless-stopped``: Docker restarts what crashes; these waits only order it.
- Each waiting service says what it waits for (``waits_inside``) and for how long at most
  (``wait_s``): Docker's start period grows by that bound, and ``up`` may start it together with
  those services rather than after their health verdict (converge/runner.py).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from albert_deploy import catalog
from albert_deploy.plan.order import waits_for
from albert_deploy.plan.spec import Endpoint, GpuStartOrder, Service

# What each client type asks first when the API starts: 0.2.0 vllm and openai GET /v1/models, tei
# GET /info (app/clients/model/_vllmmodelclient.py:39-44, _openaimodelclient.py:39-44,
# _teimodelclient.py:42-47); 0.0.3 the same paths (app/clients/_modelclients.py:30, :44, :53).
PROBE_PATH = {"vllm": "/v1/models", "openai": "/v1/models", "tei": "/info"}
MARGIN_S = 30  # the API waits this much beyond the slowest server's health budget

# argv: bound (s), checks (JSON: [{"url", "key"}] or [{"host", "port"}]), then the API's command.
# Keys are read from the container's environment by name: no secret on the command line.
API_WAIT = """import json, os, signal, socket, sys, time, urllib.request
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # PID 1 ignores it unless handled: stop at once
bound, checks, command = float(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3:]
def answers(c):
    try:
        if "url" not in c:
            socket.create_connection((c["host"], c["port"]), timeout=5).close()
            return True
        request = urllib.request.Request(c["url"])
        if os.environ.get(c["key"]):
            request.add_header("Authorization", "Bearer " + os.environ[c["key"]])
        urllib.request.urlopen(request, timeout=5).close()
        return True
    except Exception:
        return False
deadline, waiting = time.monotonic() + bound, checks
while waiting:
    waiting = [c for c in waiting if not answers(c)]
    if not waiting or time.monotonic() > deadline:
        break
    time.sleep(0.5)
names = [c.get("url") or "%s:%s" % (c["host"], c["port"]) for c in waiting]
print("albert-deploy: " + ("still silent after %d s, starting without: %s" % (bound, ", ".join(names))
      if names else "every model server and database answers, starting"), file=sys.stderr, flush=True)
os.execvp(command[0], command)
"""

# argv ($0 = name): bound (s), then URL and accepted HTTP codes per predecessor, `--`, the command.
# As PID 1, sh ignores SIGTERM without a trap: `docker stop` of a waiting container would take 10 s.
PREDECESSOR_WAIT = """trap 'exit 143' TERM
answers() {
  code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$1") || return 1
  case " $2 " in *" $code "*) return 0;; esac
  return 1
}
deadline=$(( $(date +%s) + $1 )); shift
while [ "$1" != -- ]; do
  echo "albert-deploy: GPU start order: waiting for $1" >&2
  until answers "$1" "$2"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "albert-deploy: $1 still silent, starting anyway" >&2; break; fi
    sleep 0.5 2>/dev/null || sleep 1  # POSIX sleep takes whole seconds; coreutils and busybox take 0.5
  done
  shift 2
done
shift
exec "$@"
"""


def health_budget(service: Service) -> int:
    """Seconds Docker gives ``service`` to turn healthy: its start period, then every retry."""
    h = service.healthcheck
    return 60 if h is None else h.start_period_s + h.retries * (h.interval_s + h.timeout_s)


def ready_within(services: Sequence[Service], order: Sequence[GpuStartOrder]) -> dict[str, int]:
    """Per service, seconds until it should answer when everything starts at once: its own budget,
    after the predecessors it waits for on its GPUs."""
    by_name = {s.name: s for s in services}
    before = waits_for(order)
    ready: dict[str, int] = {}

    def of(name: str) -> int:
        if name not in ready:
            ready[name] = health_budget(by_name[name]) + max((of(p) for p in before.get(name, ())), default=0)
        return ready[name]

    for s in services:
        of(s.name)
    return ready


def api_bound(services: Sequence[Service], order: Sequence[GpuStartOrder]) -> int:
    """How long the API waits at most: the slowest of the others (chains included), plus a margin."""
    others = [s for s in services if s.role != "api"]
    return max(ready_within(others, order).values(), default=0) + MARGIN_S


def wait_for_predecessors(services: Sequence[Service], order: Sequence[GpuStartOrder]) -> list[Service]:
    """Each model server with predecessors on its GPUs (every server of the step before its own,
    ``order.waits_for``) waits for them before its entrypoint."""
    by_name = {s.name: s for s in services}
    ready = ready_within(services, order)
    before = waits_for(order)
    result = []
    for s in services:
        preds = list(dict.fromkeys(before.get(s.name, ())))
        if not preds:
            result.append(s)
            continue
        targets = [a for p in preds for a in _answer(by_name[p])]
        server = catalog.SERVERS[s.server or ""]
        bound = max(ready[p] for p in preds)
        result.append(
            dataclasses.replace(
                s,
                compose_entrypoint=("sh", "-c", PREDECESSOR_WAIT, "gpu-start-order", str(bound), *targets, "--"),
                compose_command=(*server.entrypoint, *(s.compose_command or s.command)),
                waits_inside=tuple(preds),
                wait_s=bound,
            )
        )
    return result


def _answer(predecessor: Service) -> tuple[str, str]:
    """Its health URL inside the network, and the codes that mean "loaded". A check that needs a
    key (whisper) is open to nobody else: a refusal (401/403) already means the server listens, and
    it listens only once its model is loaded (uvicorn runs the lifespan first, app/main.py:27-34)."""
    check = predecessor.healthcheck.http if predecessor.healthcheck else None
    port = check.port if check else predecessor.container_port
    path = check.path if check else "/"
    codes = "200 401 403" if check is None or check.key_env else "200"
    return f"http://{predecessor.name}:{port}{path}", codes


def wait_for_dependencies(
    api: Service, dependencies: Iterable[Service], endpoints: Iterable[Endpoint], bound: int, command: Sequence[str]
) -> Service:
    """The API starts once every hosted model and database it depends on answers (or ``bound``
    seconds have passed). ``command``: what it runs then (its own, or its image's CMD)."""
    checks: list[dict[str, object]] = [
        {"url": e.url + PROBE_PATH[e.client], "key": e.key.name if e.key else ""}
        for e in endpoints
        if e.hosted and e.client in PROBE_PATH
    ]
    deps = list(dependencies)
    asked = {urlsplit(e.url).hostname for e in endpoints if e.hosted and e.client in PROBE_PATH}
    checks += [{"host": d.name, "port": d.container_port} for d in deps if d.role == "database" and d.container_port]
    return dataclasses.replace(
        api,
        compose_command=("python3", "-c", API_WAIT, str(bound), json.dumps(checks, separators=(",", ":")), *command),
        # What it probes: each hosted model's server, or for a model with replicas its balancer (a
        # replica replaced behind it is never probed by the API: plan/replicas.py).
        probes_once=tuple(d.name for d in deps if d.role in ("model", "balancer") and d.name == d.model),
        # `up` may start it before the model servers it asks (not before the databases: a port that
        # accepts a connection is not a database that accepts queries, as pg_isready tells apart).
        waits_inside=tuple(d.name for d in deps if d.name in asked),
        wait_s=bound,
    )
