"""Cold start of a shared GPU: time until the API answers with every model, against the
critical-path bound, and against the old strictly serial chain. Prints figures; not a test.
Needs the Docker daemon (run it under the test lock: flock /tmp/docker-tests.lock python …).

The stack: the default profile's shape (Albert API 0.2.0, redis, postgres, qdrant, and the four
catalog models all on GPU 0 of one declared H100), on the test stand-in images. Each model server
"loads" for its real load time scaled down (STANDIN_LOAD_SECONDS, counted from the process start
like a real load time; a stand-in binds only after it,
as the real servers bind only once loaded: tests/standins/facts.py "<kind> listens once loaded").
Load times are issue #13's figures (no upstream document gives any, docs/upstream-facts.md §2):
a 7B vLLM about 90 s, whisper about 30 s, each TEI about 15 s; scaled by 1/10 by default, and so
is the health-check interval (compose's 10 s default becomes 1 s).

No GPU here. The placement and the start order are computed for the declared H100, exactly as in
production; `up --no-gpus` (a product option) then drops only the device requests from the
Docker requests. The planned order is kept inside the containers (each server of a later step
waits for its predecessors' health URL before its own start, plan/startup.py), so `up` starts them
all at once and Docker's health-check interval is not on the path (docs/memory-model.md, "How the
schedule is kept").

What the bound leaves out, and the measure includes: the CLI's own start, render and container
creation (about 1 s here), and each step's detection (a poll every 0.5 s) and the API's own start
(about 0.5 s): about 2 s in all, which do not shrink with --scale. So the ratio falls as --scale
grows: a tenth is the quick default, --scale 0.25 is closer to the real load times.

Bound: per GPU, what docs/memory-model.md allows: its vLLM servers one at a time, the other
servers together (Σ vLLM loads + the longest other load); GPUs in parallel. The old chain: every
server of a GPU one after another (Σ loads); it is also measured, by running `up` with the old
order patched into plan/order.py in that process only (a benchmark-only step).

Run: python benchmarks/bench_coldstart.py [--rounds N] [--scale S]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "standins"))

# Seconds to load, per server kind: issue #13 (a 7B vLLM, whisper-large-v3-turbo, each TEI).
LOAD_S = {"vllm": 90.0, "whisper": 30.0, "tei": 15.0}
MODELS = {
    "AgentPublic/guillaumetell-7b": "vllm",
    "openai/whisper-large-v3-turbo": "whisper",
    "BAAI/bge-reranker-v2-m3": "tei",
    "intfloat/multilingual-e5-large": "tei",
}

# The schedule before issue #13 (every server of a GPU one after another, largest budget first),
# patched into plan/order.py for one `up` process: only the serial figure uses it.
SERIAL_UP = """
import sys
from albert_deploy.plan import order
from albert_deploy.plan.spec import GpuStartOrder
planned = order.gpu_start_order
def serial(services, memory):
    rank = lambda name: (-memory.get(name, 0), name)
    return tuple(GpuStartOrder(o.gpu, tuple((n,) for n in sorted(o.services, key=rank)))
                 for o in planned(services, memory))
order.gpu_start_order = serial
from albert_deploy.cli import cli
cli(sys.argv[1:], prog_name="albert-deploy")
"""


def profile(port: int, scale: float) -> dict[str, Any]:
    """tests/profiles/standins.yaml (one declared H100, the stand-in images) with every model on
    GPU 0, loading for its scaled load time."""
    data: dict[str, Any] = yaml.safe_load((REPO / "tests" / "profiles" / "standins.yaml").read_text())
    data["project"] = "albert-bench-coldstart"
    data["api"]["port"] = port
    data["health_interval"] = max(1, round(10 * scale))  # compose's 10 s default, scaled like the loads
    for model in data["models"]:
        kind = MODELS[model["model"]]
        load = {"STANDIN_LOAD_SECONDS": f"{LOAD_S[kind] * scale:g}"}
        model.update(gpus=[0], health_start_period=120, env=load)
    return data


def bound(start_order: Any, kinds: Mapping[str, str], loads: Mapping[str, float]) -> float:
    """The critical path the documented overlaps allow: per GPU, Σ vLLM loads + the longest other."""
    per_gpu = []
    for gpu in start_order:
        alone = [loads[kinds[s]] for s in gpu.services if kinds[s] == "vllm"]
        together = [loads[kinds[s]] for s in gpu.services if kinds[s] != "vllm"]
        per_gpu.append(sum(alone) + max(together, default=0.0))
    return max(per_gpu, default=0.0)


def planned_path(services: Any, kinds: Mapping[str, str], loads: Mapping[str, float]) -> float:
    """The longest path through the plan's depends_on, weighting each model server by its load."""
    deps = {s.name: s.depends_on for s in services}
    done: dict[str, float] = {}

    def finish(name: str) -> float:
        if name not in done:
            own = loads[kinds[name]] if name in kinds else 0.0
            done[name] = own + max((finish(d) for d in deps[name]), default=0.0)
        return done[name]

    return max(finish(name) for name in deps)


def serial(start_order: Any, kinds: Mapping[str, str], loads: Mapping[str, float]) -> float:
    return max((sum(loads[kinds[s]] for s in gpu.services) for gpu in start_order), default=0.0)


def answers_with_every_model(port: int, env_file: Path, names: set[str]) -> bool:
    key = next(
        (line.split("=", 1)[1].strip() for line in env_file.read_text().splitlines() if line.startswith("MASTER_KEY=")),
        "",
    )
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:
            ids = {m["id"] for m in json.load(answer)["data"]}
    except (OSError, ValueError, KeyError):
        return False
    return names <= ids


def first_container_start(client: Any, project: str) -> float:
    """When the stack's first container started (seconds since the epoch), as Docker records it."""
    found = client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
    started = [datetime.fromisoformat(c.attrs["State"]["StartedAt"][:26] + "+00:00") for c in found]
    return min(s.timestamp() for s in started)


def cold_start(command: list[str], port: int, out: Path, names: set[str]) -> tuple[float, float, float]:
    """Seconds until the API answers with every model, until `up` returned, and when `up` was launched."""
    answered: list[float] = []
    stop = threading.Event()
    launched = time.time()
    start = time.perf_counter()

    def poll() -> None:
        while not stop.is_set():
            if (out / ".env").is_file() and answers_with_every_model(port, out / ".env", names):
                answered.append(time.perf_counter() - start)
                return
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    result = subprocess.run(command, capture_output=True, text=True)
    returned = time.perf_counter() - start
    if result.returncode != 0:
        stop.set()
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    poller.join(timeout=60)
    stop.set()
    if not answered:
        sys.exit("the API never answered with every model")
    return answered[0], returned, launched


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=0.1, help="load times = issue #13's figures x SCALE")
    args = parser.parse_args()

    import build  # tests/standins/build.py
    import docker

    from albert_deploy import commands

    client = docker.from_env()
    build.build_all(client)
    work = Path(tempfile.mkdtemp(prefix="bench-coldstart-"))
    port = free_port()
    prof, out = work / "profile.yaml", work / "deploy"
    prof.write_text(yaml.safe_dump(profile(port, args.scale)))
    plan = commands.load(str(prof))
    kinds = {s.name: s.server for s in plan.services if s.server}
    loads = {kind: seconds * args.scale for kind, seconds in LOAD_S.items()}
    names = {e.name for e in plan.endpoints}
    tool = [sys.executable, "-m", "albert_deploy"]
    up_args = ["up", str(prof), "-o", str(out), "--no-gpus", "--json"]
    commands_by_schedule = {"planned": [*tool, *up_args], "serial": [sys.executable, "-c", SERIAL_UP, *up_args]}
    down = [*tool, "down", str(prof), "--volumes"]
    subprocess.run(down, capture_output=True)

    measured: dict[str, list[float]] = {"planned": [], "serial": []}
    returned: dict[str, list[float]] = {"planned": [], "serial": []}
    from_first: dict[str, list[float]] = {"planned": [], "serial": []}  # from the first container's start
    try:
        for i in range(args.rounds):
            for which in ("planned", "serial") if i % 2 == 0 else ("serial", "planned"):
                answer, up_done, launched = cold_start(commands_by_schedule[which], port, out, names)
                measured[which].append(answer)
                returned[which].append(up_done)
                from_first[which].append(launched + answer - first_container_start(client, plan.project))
                subprocess.run(down, capture_output=True, check=True)
    finally:
        subprocess.run(down, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    the_bound = bound(plan.start_order, kinds, loads)
    path = planned_path(plan.services, kinds, loads)
    old = serial(plan.start_order, kinds, loads)
    new, before = statistics.median(measured["planned"]), statistics.median(measured["serial"])
    print(
        f"loads (issue #13 x {args.scale:g}): vLLM {loads['vllm']:g} s, whisper {loads['whisper']:g} s, "
        f"TEI {loads['tei']:g} s each; health interval {profile(port, args.scale)['health_interval']} s; "
        f"{args.rounds} rounds, alternating"
    )
    print("start order: " + "; ".join(f"GPU {o.gpu}: {o.text(' -> ')}" for o in plan.start_order))
    print(f"critical-path bound            {the_bound:6.2f} s   (the plan's own longest path: {path:.2f} s)")
    runs = ", ".join(f"{t:.2f}" for t in measured["planned"])
    print(f"measured, new schedule  median {new:6.2f} s   runs {runs}   (`up` returned: median "
          f"{statistics.median(returned['planned']):.2f} s)")  # fmt: skip
    print(f"ratio measured / bound          {new / the_bound:6.2f}     (goal <= 1.1)")
    since = statistics.median(from_first["planned"])
    print(f"  the same from the first container's start (no CLI start, render, create): {since:.2f} s, "
          f"ratio {since / the_bound:.2f}")  # fmt: skip
    runs = ", ".join(f"{t:.2f}" for t in measured["serial"])
    print(f"old serial chain: computed {old:6.2f} s, measured median {before:6.2f} s   runs {runs}")
    print(f"ratio old measured / old computed {before / old:6.2f};  new / old measured {new / before:.2f}")


if __name__ == "__main__":
    main()
