"""`up` with nothing to change, without loading the profile, rendering or the Docker SDK.

After an ``up`` that succeeded, a stamp (``DIR.backups/last-up.json``, mode 0600, hashes only) records
a fingerprint of everything the plan is made from, and the containers that run it. The next ``up``
first computes the fingerprint again: the profile file, its lock file, the rendered files in DIR,
``--no-gpus``, the environment variables the plan reads, the Docker host, and albert-deploy's own
files. When it matches, one listing of the project's containers (plus one inspect per image) says
whether the full ``up`` would do anything: the same containers, all running and healthy (or without
a health check), with the recorded config hash, each on the image id its reference has here now.
Then ``up`` reports "nothing changed"; on any difference, or any doubt, the full ``up`` runs.

No stamp is written for a profile with ``gpus: auto`` (the host's GPUs are an input no file shows)
or ``offline: true`` (whose check before starting must run), nor for a Docker host other than a
local socket.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from albert_deploy import __version__
from albert_deploy.converge.labels import CONFIG_HASH, ONEOFF, PROJECT, SERVICE
from albert_deploy.render.output import backups_dir
from albert_deploy.resources import PACKAGE

STAMP = "last-up.json"
FORMAT = 1
_REFERENCED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Inputs:
    """What one ``up`` was asked: the profile (None: the embedded default), the output directory."""

    profile: str | None
    out_dir: Path
    no_gpus: bool


def stamp_path(out_dir: Path) -> Path:
    return backups_dir(out_dir) / STAMP


def socket_path() -> str | None:
    """The Docker daemon's socket, as docker-py's ``from_env`` finds it; None for any other kind of host."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return host.removeprefix("unix://") if host.startswith("unix://") else None


def fingerprint(inputs: Inputs, lock: str, env_names: Iterable[str]) -> str:
    digest = hashlib.sha256(f"albert-deploy-up/{FORMAT}/{__version__}\n".encode())

    def add(label: str, data: bytes | None) -> None:
        digest.update(f"{label}\0{-1 if data is None else len(data)}\0".encode() + (data or b""))

    for path in sorted(p for p in PACKAGE.rglob("*") if p.suffix in (".py", ".j2", ".yaml")):
        info = path.stat()  # an edited or upgraded albert-deploy renders differently
        add(f"code:{path.relative_to(PACKAGE)}", f"{info.st_size}:{info.st_mtime_ns}".encode())
    add("cwd", os.getcwd().encode())
    add("profile", None if inputs.profile is None else str(Path(inputs.profile).resolve()).encode())
    add("profile-text", _read(Path(inputs.profile)) if inputs.profile is not None else None)
    add("lock", _read(Path(lock)))
    out_dir = inputs.out_dir.resolve()
    add("out", str(out_dir).encode())
    files = sorted(p for p in out_dir.rglob("*") if p.is_file()) if out_dir.is_dir() else []
    for path in files:
        add(f"file:{path.relative_to(out_dir)}", _read(path))
    add("no-gpus", str(inputs.no_gpus).encode())
    for name in sorted({*env_names, "DOCKER_HOST"}):
        value = os.environ.get(name)
        add(f"env:{name}", None if value is None else value.encode())
    return digest.hexdigest()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def env_names(names: Iterable[str], env_text: str) -> list[str]:
    """The process environment's variables the plan reads: ``names`` (its secrets and operator
    variables, which the environment overrides) and those .env refers to as ``${NAME}``."""
    return sorted({*names, *_REFERENCED.findall(env_text)})


def write(inputs: Inputs, lock: str, names: list[str], rows: list[dict[str, Any]], result: dict[str, Any]) -> None:
    """Record a successful ``up``: ``rows``, the project's containers as the daemon lists them now
    (with the service's image and whether it has a health check, added by the caller)."""
    stamp = {
        "format": FORMAT,
        "fingerprint": fingerprint(inputs, lock, names),
        "lock": lock,
        "env_names": names,
        "project": result["project"],
        "containers": {
            r["Id"]: {k: r.get(k) for k in ("service", "config_hash", "image", "checked", "verified")} for r in rows
        },
        "result": {k: result[k] for k in ("project", "services", "api_url")},
    }
    path = stamp_path(inputs.out_dir)
    with contextlib.suppress(OSError):  # no stamp only means no shortcut next time
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(stamp, handle)
        os.replace(path.with_suffix(".tmp"), path)


def forget(out_dir: Path) -> None:
    with contextlib.suppress(OSError):
        stamp_path(out_dir).unlink()


def unchanged(inputs: Inputs, detach: bool = False, reporter: Any = None) -> dict[str, Any] | None:
    """``up``'s result when nothing would change, or None: then the full ``up`` must run."""
    t0 = time.monotonic()
    try:
        stamp = json.loads(stamp_path(inputs.out_dir).read_text(encoding="utf-8"))
        if stamp.get("format") != FORMAT or stamp["fingerprint"] != fingerprint(
            inputs, stamp["lock"], stamp["env_names"]
        ):
            return None
        states = _running_as_recorded(stamp["project"], stamp["containers"])
    except (OSError, ValueError, KeyError, TypeError, http.client.HTTPException):
        return None
    if states is None:
        return None
    result = stamp["result"]
    services = [{**row, "action": "nothing", **states[row["service"]]} for row in result["services"]]
    if reporter is not None:
        reporter.begin([row["service"] for row in services])
        for row in services:
            reporter.update(row["service"], state="unchanged")
        reporter.end()
    return {
        **result,
        "services": services,
        "actions": [{"service": row["service"], "action": "nothing", "reason": ""} for row in services],
        "changes": 0,
        "detached": detach,
        "seconds": round(time.monotonic() - t0, 2),
    }


def _running_as_recorded(project: str, recorded: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, str]] | None:
    """Per service, its state and health, when the project's containers are exactly the recorded
    ones, each running (healthy, where it has a check) on its image's current id; else None."""
    path = socket_path()
    if path is None:
        return None
    with contextlib.closing(_UnixConnection(path)) as daemon:
        filters = json.dumps({"label": [f"{PROJECT}={project}", f"{ONEOFF}=False"]})
        rows = daemon.get(f"/containers/json?{urlencode({'all': 1, 'filters': filters})}")
        if not isinstance(rows, list) or {r.get("Id") for r in rows} != set(recorded):
            return None
        image_ids = {image: daemon.get(f"/images/{quote(image, safe='/:@')}/json") for image in
                     sorted({c["image"] for c in recorded.values()})}  # fmt: skip
    states = {}
    for row in rows:
        want, labels = recorded[row["Id"]], row.get("Labels") or {}
        healthy = "(healthy)" in row.get("Status", "")
        # Docker's first verdict may not have come yet for a container whose check `up` ran itself (probe.py).
        vouched = healthy or (bool(want.get("verified")) and "(health: starting)" in row.get("Status", ""))
        image = image_ids.get(want["image"])
        if (
            row.get("State") != "running"
            or (want["checked"] and not vouched)
            or labels.get(CONFIG_HASH) != want["config_hash"]
            or labels.get(SERVICE) != want["service"]
            or not isinstance(image, dict)
            or image.get("Id") != row.get("ImageID")
        ):
            return None
        states[want["service"]] = {"state": "running", "health": "healthy" if vouched and want["checked"] else ""}
    return states


class _UnixConnection(http.client.HTTPConnection):
    """HTTP to the Docker daemon's socket (what the Docker SDK would do, without importing it)."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock

    def get(self, url: str) -> Any:
        """The decoded JSON of a GET, or None for any status but 200."""
        self.request("GET", url)
        response = self.getresponse()
        body = response.read()
        return json.loads(body) if response.status == 200 else None
