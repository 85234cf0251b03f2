"""`bundle`: one archive to carry a deployment to a host without internet access.

The archive is an uncompressed tar (image layers are already compressed; gzip would only cost
time). ``manifest.json`` comes first; every other member is listed in it with its size and
sha256::

    manifest.json
    images.tar                       docker save of every image of the stack (shared layers once)
    volumes/<project>_<model>-cache.tar   the model cache's contents (docker cp of the volume)
    rendered/compose.yml, rendered/config.yml, rendered/RUNBOOK.md    (never .env: secrets stay)
    profile/<name>.yaml [, profile/<name>.lock.json]

``load`` (``unbundle.py``) reads it back.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import docker.errors
import docker.types
from docker.utils import parse_repository_tag

from albert_deploy import __version__
from albert_deploy.airgap.assets import sha256_in_volume_tar
from albert_deploy.converge import containers, engine
from albert_deploy.errors import BundleError, DockerError
from albert_deploy.plan.spec import ModelCache

FORMAT = "albert-deploy-bundle/1"
MANIFEST = "manifest.json"
RENDERED = ("compose.yml", "config.yml", "RUNBOOK.md")
VOLUME_ROOT = "/albert-deploy-volume"  # where a helper container mounts a volume for docker cp
CHUNK = 1 << 20


class Hashing:
    """A file object that hashes and counts what passes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.sha, self.size = raw, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)


def write_bundle(
    client: Any,
    project: str,
    image_refs: list[str],
    jobs: list[ModelCache],
    files: dict[str, bytes],
    target: Path,
    checked: dict[str, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Write the archive to ``target`` (through a temporary file: a failed bundle leaves nothing).

    ``checked``: volume key -> (file, sha256) that volume must hold (a release asset): refused
    here when it does not, recorded in the manifest so that ``load`` checks it again."""
    checked = checked or {}
    t0 = time.monotonic()
    target = target.resolve()
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as err:
        raise BundleError(f"{target}: cannot write there ({err.strerror}); choose a writable place with -o") from None
    try:
        members: dict[str, dict[str, Any]] = {}
        volumes: dict[str, dict[str, Any]] = {}
        tags = image_tags(client, image_refs)
        store_member(work, members, "images.tar", _saved_images(client, image_refs))
        for job in jobs:
            volume = containers.volume_name(project, job.volume)
            image_id = str(client.api.inspect_image(job.image)["Id"])
            member = f"volumes/{volume}.tar"
            store_member(work, members, member, volume_contents(client, project, volume, image_id))
            volumes[volume] = {"member": member, "volume": job.volume, "service": job.service, "image_id": image_id}
            if job.volume in checked:
                name, sha256 = checked[job.volume]
                with open(work / "members" / member, "rb") as stream:
                    if sha256_in_volume_tar(stream, name) != sha256:
                        raise BundleError(f"volume {volume} lacks the {job.model_id} ({name} with sha256 {sha256}): "
                                          "run `albert-deploy pull` first")  # fmt: skip
                volumes[volume]["file"] = {"name": name, "sha256": sha256}
        for name, data in sorted(files.items()):
            store_member(work, members, name, iter([data]))
        manifest = {
            "format": FORMAT,
            "albert_deploy": __version__,
            "project": project,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "images": sorted(image_refs),
            "tags": tags,
            "volumes": volumes,
            "members": members,
        }
        partial = work / "bundle.tar"
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            data = json.dumps(manifest, indent=2, sort_keys=True).encode()
            add_member(tar, MANIFEST, io.BytesIO(data), len(data))
            for name, meta in members.items():
                with open(work / "members" / name, "rb") as stream:
                    add_member(tar, name, stream, meta["size"])
        partial.replace(target)
    except OSError as err:
        raise BundleError(
            f"{target}: cannot write the bundle ({err.strerror}); choose a writable place with -o"
        ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"bundle": str(target), "size": target.stat().st_size, "seconds": round(time.monotonic() - t0, 1),
            "images": sorted(image_refs), "volumes": sorted(volumes), "members": members}  # fmt: skip


def store_member(work: Path, members: dict[str, dict[str, Any]], name: str, chunks: Iterator[bytes]) -> None:
    path = work / "members" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw:
        out = Hashing(raw)
        for chunk in chunks:
            out.write(chunk)
    members[name] = {"size": out.size, "sha256": out.sha.hexdigest()}


def add_member(tar: tarfile.TarFile, name: str, stream: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, int(time.time())
    tar.addfile(info, stream)


def _saved_images(client: Any, refs: list[str]) -> Iterator[bytes]:
    """``docker save`` of all refs at once, so that layers they share are stored once."""
    try:
        response = client.api._get(client.api._url("/images/get"), params={"names": sorted(refs)}, stream=True)
        client.api._raise_for_status(response)
        yield from response.iter_content(CHUNK)
    except docker.errors.APIError as err:
        raise DockerError(
            f"cannot save the images ({engine.explanation(err)}): run `albert-deploy pull` first"
        ) from None


def _repository(ref: str) -> str:
    """A reference's repository as the daemon writes it in RepoTags (``docker.io/library/`` dropped)."""
    repository = parse_repository_tag(ref)[0]
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if repository.startswith(prefix):
            return repository.removeprefix(prefix)
    return repository


def image_tags(client: Any, refs: list[str]) -> dict[str, dict[str, Any]]:
    """Each reference's image id and its tags in the reference's own repository.

    ``docker load`` of an image saved by digest (a locked profile) may restore it untagged, and an
    untagged image is what ``docker image prune`` deletes: ``load`` tags it again from this record."""
    result: dict[str, dict[str, Any]] = {}
    for ref in sorted(refs):
        try:
            info = client.api.inspect_image(ref)
        except docker.errors.APIError as err:
            raise DockerError(
                f"cannot save image {ref} ({engine.explanation(err)}): run `albert-deploy pull` first"
            ) from None
        repository = _repository(ref)
        tags = {t for t in info.get("RepoTags") or [] if _repository(t) == repository and "@" not in t}
        if "@" not in ref:
            name, tag = parse_repository_tag(ref)
            tags.add(f"{_repository(name)}:{tag or 'latest'}")
        result[ref] = {"id": str(info["Id"]), "tags": sorted(tags)}
    return result


@contextlib.contextmanager
def volume_helper(client: Any, project: str, volume: str, image_id: str) -> Iterator[str]:
    """A container that is never started, only there to copy a volume's files in or out."""
    container = client.api.create_container(
        image_id,
        entrypoint=["true"],
        labels={containers.PROJECT: project, containers.ONEOFF: "True", "io.albert-deploy.bundle": volume},
        host_config=client.api.create_host_config(
            mounts=[docker.types.Mount(VOLUME_ROOT, volume, type="volume")], network_mode="none"
        ),
    )["Id"]
    try:
        yield container
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_container(container, force=True)


def volume_contents(client: Any, project: str, volume: str, image_id: str) -> Iterator[bytes]:
    if not client.api.volumes(filters={"name": volume}).get("Volumes"):
        raise BundleError(f"volume {volume} does not exist: run `albert-deploy pull` first to download the model")
    with volume_helper(client, project, volume, image_id) as container:
        stream, _ = client.api.get_archive(container, VOLUME_ROOT + "/.")
        yield from stream
