"""Release assets (plan/assets.py, e.g. tiktoken's o200k_base file for Albert 0.2.0): download into
the volume the API mounts, check it there by its sha256, and find it inside a bundled volume.

The download runs in the downloader image, like the model caches: no byte passes through this
host's Python, and a file whose sha256 differs is refused, never written.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from typing import IO, Any

import docker.types

from albert_deploy.airgap.modelcache import run_once
from albert_deploy.converge import containers, engine
from albert_deploy.converge.containers import ONEOFF, PROJECT, SERVICE
from albert_deploy.converge.progress import Reporter
from albert_deploy.errors import DockerError
from albert_deploy.plan.assets import URL_OVERRIDE_ENV, ReleaseAsset
from albert_deploy.plan.spec import ModelCache

ASSET_LABEL = "io.albert-deploy.asset"

# argv = URL, destination file, expected sha256, owner uid. Exit 3: the sha256 differs.
DOWNLOAD_SCRIPT = """
import hashlib, os, sys, urllib.request
url, path, expected, uid = sys.argv[1:5]
data = urllib.request.urlopen(url, timeout=300).read()
got = hashlib.sha256(data).hexdigest()
if got != expected:
    print("refused: sha256 " + got + " is not the expected " + expected)
    sys.exit(3)
with open(path + ".part", "wb") as out:
    out.write(data)
os.rename(path + ".part", path)
if uid:  # the API runs as this user: tiktoken re-fetches (and so writes) a file it cannot trust
    for name in (os.path.dirname(path), path):
        os.lchown(name, int(uid), -1)
print("downloaded " + url + " into " + path)
"""

# argv = file, expected sha256: exit 0 only when the file is there with that sha256.
CHECK_SCRIPT = """
import hashlib, sys
try:
    ok = hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest() == sys.argv[2]
except OSError:
    ok = False
sys.exit(0 if ok else 1)
"""


def source_url(asset: ReleaseAsset) -> str:
    """The asset's URL, or the test-only override (a file served on 127.0.0.1)."""
    return os.environ.get(URL_OVERRIDE_ENV) or asset.url


def download_assets(
    client: Any, project: str, assets: list[ReleaseAsset], image: str, reporter: Reporter
) -> list[dict[str, Any]]:
    rows = []
    for asset in assets:
        engine.ensure_volume(client, project, asset.volume)
        key = f"asset {asset.volume}"
        reporter.update(key, state="downloading", detail=asset.name)
        url = source_url(asset)
        # Only the test override points at this host's loopback, which a container reaches on the host network.
        network = "host" if url != asset.url else None
        code, last = _run(client, project, image, [url, asset.path, asset.sha256, asset.user], DOWNLOAD_SCRIPT,
                          asset, read_only=False, network=network)  # fmt: skip
        reporter.update(key, state="downloaded" if code == 0 else "failed", detail=last)
        volume = containers.volume_name(project, asset.volume)
        if code != 0:
            raise DockerError(f"downloading the {asset.name} into volume {volume} failed: {last}")
        rows.append({"asset": asset.name, "volume": volume, "path": asset.path, "sha256": asset.sha256})
    return rows


def missing_assets(client: Any, project: str, assets: list[ReleaseAsset], image: str) -> list[ReleaseAsset]:
    """The assets whose volume lacks the file or holds other content (checked in ``image``, no network)."""
    present = {v["Name"] for v in (client.api.volumes().get("Volumes") or [])}
    return [
        a for a in assets
        if containers.volume_name(project, a.volume) not in present
        or _run(client, project, image, [a.path, a.sha256], CHECK_SCRIPT, a, read_only=True, network="none")[0] != 0
    ]  # fmt: skip


def _run(
    client: Any, project: str, image: str, argv: list[str], script: str, asset: ReleaseAsset, *,
    read_only: bool, network: str | None,
) -> tuple[int, str]:  # fmt: skip
    volume = containers.volume_name(project, asset.volume)
    container = client.api.create_container(
        image,
        command=argv,
        entrypoint=["python3", "-c", script],
        user="0",
        labels={PROJECT: project, SERVICE: "api", ONEOFF: "True", ASSET_LABEL: asset.volume},
        host_config=client.api.create_host_config(
            mounts=[docker.types.Mount(asset.mount, volume, type="volume", read_only=read_only)],
            network_mode=network,
        ),
    )["Id"]
    code, log = run_once(client, container)
    return code, (log.strip().splitlines() or ["(no output)"])[-1][:300]


def as_volume_job(asset: ReleaseAsset, api_image: str) -> ModelCache:
    """The asset's volume in the shape `bundle` and `load` carry volumes (restored with the API's image)."""
    return ModelCache("api", asset.name, api_image, asset.volume, asset.mount, asset.mount, asset.user)


def sha256_in_volume_tar(stream: IO[bytes], name: str) -> str | None:
    """The sha256 of ``name`` inside a tar of a volume's root (``docker cp VOLUME/.``), None when absent."""
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if member.isfile() and member.name.removeprefix("./") == name:
                data = tar.extractfile(member)
                return hashlib.sha256(data.read()).hexdigest() if data else None
    return None
