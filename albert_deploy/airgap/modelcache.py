"""Model caches: download a model's weights into the volume its server mounts, check they are there.

The download runs in a one-off container (no weight passes through this host's Python) with
``huggingface_hub.snapshot_download`` into the directory the server reads as its hub cache
(``catalog.Server.hub_cache``). The token reaches it only through the container's environment
(``HF_TOKEN``, which huggingface_hub reads itself): never on a command line, never printed.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker.errors
import docker.types

from albert_deploy.converge import containers, engine
from albert_deploy.converge.containers import ONEOFF, PROJECT, SERVICE
from albert_deploy.converge.progress import Reporter
from albert_deploy.errors import DockerError
from albert_deploy.plan.spec import ModelCache

DOWNLOAD_LABEL = "io.albert-deploy.download"

# Runs inside the downloader image: argv = repo id, hub cache directory, volume root, owner uid.
DOWNLOAD_SCRIPT = """
import os, sys
repo, hub, root, uid = sys.argv[1:5]
from huggingface_hub import snapshot_download
path = snapshot_download(repo_id=repo, cache_dir=hub)
if uid:  # the server runs as this user: it must own what it reads and the locks it takes
    for top, dirs, files in os.walk(root):
        for name in [top] + [os.path.join(top, n) for n in dirs + files]:
            os.lchown(name, int(uid), -1)
print("downloaded " + repo + " into " + path + "; token " + ("set" if os.environ.get("HF_TOKEN") else "not set"))
"""

# Runs in the server's own image (every one has a POSIX sh): exit 0 when a snapshot is there.
CHECK_SCRIPT = 'for d in "$1"/snapshots/*/; do [ -d "$d" ] && exit 0; done; exit 1'


def download_all(
    client: Any,
    project: str,
    todo: list[ModelCache],
    image: str,
    token: str | None,
    reporter: Reporter,
    parallel: int = 4,
) -> list[dict[str, Any]]:
    """Download every model, ``parallel`` at a time; one row per model. Raises on the first failure, after all finished."""
    for job in todo:
        engine.ensure_volume(client, project, job.volume)
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [pool.submit(_download, client, project, job, image, token, reporter) for job in todo]
        rows = [f.result() for f in futures]
    failed = [r for r in rows if not r["ok"]]
    if failed:
        first = failed[0]
        raise DockerError(
            f"downloading {first['model']} into volume {first['volume']} failed: {first['detail']}; "
            "check the model id, and HF_TOKEN (in the environment or .env) for gated models"
        )
    return rows


def _download(
    client: Any, project: str, job: ModelCache, image: str, token: str | None, reporter: Reporter
) -> dict[str, Any]:
    key = f"model {job.service}"
    reporter.update(key, state="downloading", detail=f"{job.model_id} -> {job.hub_cache}")
    volume = containers.volume_name(project, job.volume)
    environment = {"HF_TOKEN": token} if token else {}  # the only place the token goes
    container = client.api.create_container(
        image,
        command=[job.model_id, job.hub_cache, job.mount, job.user],
        entrypoint=["python3", "-c", DOWNLOAD_SCRIPT],
        environment=environment,
        user="0",  # writes into a fresh volume, then hands it to the server's user
        labels={PROJECT: project, SERVICE: job.service, ONEOFF: "True", DOWNLOAD_LABEL: job.model_id},
        host_config=client.api.create_host_config(
            mounts=[docker.types.Mount(job.mount, volume, type="volume")], auto_remove=False
        ),
        name=f"{project}-download-{job.service}",
    )["Id"]
    code, log = run_once(client, container)
    if token:
        log = log.replace(token, "********")
    last = (log.strip().splitlines() or ["(no output)"])[-1][:300]
    reporter.update(key, state="downloaded" if code == 0 else "failed", detail=last)
    return {"service": job.service, "model": job.model_id, "volume": volume, "path": job.model_dir,
            "ok": code == 0, "detail": last}  # fmt: skip


def run_once(client: Any, container: str) -> tuple[int, str]:
    """Start a created one-off container, wait for it, remove it: (exit code, its log)."""
    try:
        client.api.start(container)
        code = int(client.api.wait(container).get("StatusCode", -1))
        log = client.api.logs(container).decode("utf-8", "replace")
    except docker.errors.APIError as err:
        code, log = -1, engine.explanation(err)
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_container(container, force=True)
    return code, log


def missing_caches(client: Any, project: str, todo: list[ModelCache]) -> list[ModelCache]:
    """The jobs whose volume holds no snapshot of the model (checked in the server's own image, no network)."""
    present = {v["Name"] for v in (client.api.volumes().get("Volumes") or [])}

    def missing(job: ModelCache) -> bool:
        volume = containers.volume_name(project, job.volume)
        if volume not in present:
            return True
        container = client.api.create_container(
            job.image,
            entrypoint=["sh", "-c", CHECK_SCRIPT, "sh", job.model_dir],
            user="0",
            labels={PROJECT: project, ONEOFF: "True"},
            host_config=client.api.create_host_config(
                mounts=[docker.types.Mount(job.mount, volume, type="volume", read_only=True)], network_mode="none"
            ),
        )["Id"]
        try:
            client.api.start(container)
            return int(client.api.wait(container).get("StatusCode", 1)) != 0
        finally:
            with contextlib.suppress(docker.errors.APIError):
                client.api.remove_container(container, force=True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        flags = list(pool.map(missing, todo))
    return [job for job, gone in zip(todo, flags, strict=True) if gone]
