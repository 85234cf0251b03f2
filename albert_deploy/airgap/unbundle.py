"""`load`: verify a bundle (see ``bundle.py``), then restore it.

It reads the whole archive and checks every size and sum before it changes anything, then restores
the images, the volumes (created with compose's labels, so `up` adopts them) and the files.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker.errors
from docker.utils import parse_repository_tag

from albert_deploy.airgap.assets import sha256_in_volume_tar
from albert_deploy.airgap.bundle import CHUNK, FORMAT, MANIFEST, VOLUME_ROOT, volume_helper
from albert_deploy.converge import engine
from albert_deploy.errors import BundleError, DockerError
from albert_deploy.render import output
from albert_deploy.render.files import ENV_FILE, GENERATED


def verify(
    path: Path, fmt: str = FORMAT, kind: str = "bundle", error: type[BundleError] = BundleError
) -> dict[str, Any]:
    """The manifest, once every member matches it; else ``error`` naming the first bad member.

    ``fmt`` and ``kind``: the archive format and its name in messages (``backup`` reads its
    archives with this too)."""
    undone = "Nothing was loaded" if kind == "bundle" else "Nothing was restored"
    try:
        with tarfile.open(path, "r:") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST:
                raise error(f"{path}: not an albert-deploy {kind} ({MANIFEST} is not its first member)")
            manifest = json.loads(_read(tar, first))
            if manifest.get("format") != fmt:
                raise error(f"{path}: {kind} format {manifest.get('format')!r} is not {fmt}")
            listed: dict[str, dict[str, Any]] = manifest["members"]
            seen = set()
            for member in tar:
                if member is first:
                    continue
                meta = listed.get(member.name)
                if meta is None:
                    raise error(
                        f"{path}: member {member.name} is not in the manifest: the {kind} was altered. {undone}"
                    )
                sha, size = hashlib.sha256(), 0
                stream = tar.extractfile(member)
                assert stream is not None
                for chunk in iter(lambda s=stream: s.read(CHUNK), b""):  # type: ignore[misc]
                    sha.update(chunk)
                    size += len(chunk)
                if size != meta["size"] or sha.hexdigest() != meta["sha256"]:
                    raise error(
                        f"{path}: member {member.name} is corrupted (its size or sha256 differs from the manifest); "
                        f"copy the {kind} again. {undone}"
                    )
                seen.add(member.name)
            lost = sorted(set(listed) - seen)
            if lost:
                raise error(f"{path}: member {lost[0]} is missing: copy the {kind} again. {undone}")
            _check_files(path, tar, manifest)
    except (tarfile.TarError, EOFError, ValueError, KeyError, TypeError) as err:
        raise error(f"{path}: not a readable {kind} ({err}); copy it again. {undone}") from None
    except OSError as err:
        raise error(f"{path}: cannot read it ({err.strerror}). {undone}") from None
    return dict(manifest)


def _check_files(path: Path, tar: tarfile.TarFile, manifest: dict[str, Any]) -> None:
    """A volume that must hold a file (a release asset, e.g. tiktoken's) holds it with its sha256."""
    for volume, meta in sorted(manifest["volumes"].items()):
        want = meta.get("file")
        if not want:
            continue
        stream = tar.extractfile(tar.getmember(meta["member"]))
        if stream is None or sha256_in_volume_tar(stream, want["name"]) != want["sha256"]:
            raise BundleError(
                f"{path}: volume {volume} does not hold {want['name']} with sha256 {want['sha256']}: "
                "bundle again after `albert-deploy pull`. Nothing was loaded"
            )


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    stream = tar.extractfile(member)
    if stream is None:
        raise BundleError(f"member {member.name} is not a file")
    return stream.read()


def load_bundle(connect: Callable[[], Any], path: Path, out_dir: Path, profile_dir: Path) -> dict[str, Any]:
    """Verify everything, check every destination, then restore images, volumes and files.

    ``connect`` is called only once the archive is verified: a corrupted one needs no daemon."""
    t0 = time.monotonic()
    manifest = verify(path)
    rendered = {n.split("/", 1)[1] for n in manifest["members"] if n.startswith("rendered/")}
    profiles = {n.split("/", 1)[1] for n in manifest["members"] if n.startswith("profile/")}
    existing = _clashing_profiles(path, profile_dir, profiles)
    if out_dir.exists():
        output.check_ours(out_dir.resolve(), GENERATED)
    client = connect()
    with tarfile.open(path, "r:") as tar:
        by_name = {m.name: m for m in tar.getmembers()}
        stream = tar.extractfile(by_name["images.tar"])
        try:
            for event in client.api.load_image(stream):
                if "error" in event:
                    raise DockerError(f"{path}: the daemon refused the images: {event['error']}")
        except docker.errors.APIError as err:
            raise DockerError(f"{path}: the daemon refused the images: {engine.explanation(err)}") from None
        tags, untagged = _restore_tags(client, manifest.get("tags") or {})  # older bundles record none
        for volume, meta in sorted(manifest["volumes"].items()):
            engine.ensure_volume(client, manifest["project"], meta["volume"])
            with volume_helper(client, manifest["project"], volume, meta["image_id"]) as container:
                # The member is a tar of the volume's root: put it back in place, owners included.
                client.api.put_archive(container, VOLUME_ROOT, tar.extractfile(by_name[meta["member"]]))
        files = {name: _read(tar, by_name[f"rendered/{name}"]).decode() for name in sorted(rendered)}
        env = out_dir / ENV_FILE
        if env.is_file():  # this host's secrets stay
            files[ENV_FILE] = env.read_text(encoding="utf-8")
        change = output.replace_directory(out_dir, files, (ENV_FILE,), GENERATED)
        profile_dir.mkdir(parents=True, exist_ok=True)
        for name in sorted(profiles - existing):
            (profile_dir / name).write_bytes(_read(tar, by_name[f"profile/{name}"]))
    return {
        "bundle": str(path),
        "project": manifest["project"],
        "images": manifest["images"],
        "tags": tags,
        "tags_not_restored": untagged,
        "volumes": sorted(manifest["volumes"]),
        "output": str(out_dir.resolve()),
        "files": change,
        "profile": [str((profile_dir / n).resolve()) for n in sorted(profiles)],
        "seconds": round(time.monotonic() - t0, 1),
    }


def _clashing_profiles(path: Path, profile_dir: Path, names: set[str]) -> set[str]:
    """Profile files already there: identical ones are kept, different ones refused before anything loads."""
    same = set()
    with tarfile.open(path, "r:") as tar:
        for name in names:
            target = profile_dir / name
            if not target.exists():
                continue
            member = tar.getmember(f"profile/{name}")
            if target.read_bytes() != _read(tar, member):
                raise BundleError(
                    f"{target} exists and differs from the bundle's: move it away or load with --profile-dir DIR. "
                    "Nothing was loaded"
                )
            same.add(name)
    return same


def _restore_tags(client: Any, recorded: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Tag every loaded image as it was tagged when bundled, only where the loaded image has the
    bundled id (a tag never moves to other content). Returns the tags restored, and those left out
    with why."""
    restored: set[str] = set()
    skipped: list[str] = []
    for ref, entry in sorted(recorded.items()):
        image_id = str(entry.get("id") or "")
        try:
            found = str(client.api.inspect_image(image_id)["Id"]) if image_id else ""
        except docker.errors.NotFound:
            found = ""
        if not image_id or found != image_id:
            skipped += [f"{tag} (image {image_id[:19] or '?'} not loaded)" for tag in entry.get("tags") or []]
            continue
        for tag in entry.get("tags") or []:
            repository, name = parse_repository_tag(tag)
            try:
                client.api.tag(image_id, repository, name)
            except docker.errors.APIError as err:
                raise DockerError(f"image {ref}: cannot tag it {tag} again: {engine.explanation(err)}") from None
            restored.add(tag)
    return sorted(restored), skipped
