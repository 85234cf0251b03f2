"""The lock file: every image of a profile resolved to its content digest, as plain data.

``albert-deploy lock PROFILE.yaml`` writes ``PROFILE.lock.json`` beside it (for the embedded
default profile: ``default.lock.json`` in the current directory). ``render`` and ``up`` read it
when it exists and run ``repository@sha256:…`` instead of the tag. Format::

    {"format": 1, "profile": "...", "images": {"redis/redis-stack-server:7.4.0-v3":
        {"digest": "sha256:…", "pinned": "redis/redis-stack-server@sha256:…", "id": "sha256:…"},
     "my/local:1": {"digest": null, "pinned": null, "id": "sha256:…", "local_only": true}}}

``id`` (the image's config digest) is what ``status`` compares a running container with, and what
``up`` runs when ``repository@sha256:…`` does not resolve here: ``docker load`` (``albert-deploy
load``) drops an image's RepoDigests but keeps its id, which is content-addressed as well. An entry
pinned without an id (locked from the registry, before a pull) cannot be used that way: ``bundle``
refuses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from albert_deploy.errors import LockError
from albert_deploy.profile.load import DEFAULT_PROFILE

FORMAT = 1
SUFFIX = ".lock.json"
DEFAULT_LOCK = "default" + SUFFIX


@dataclass(frozen=True)
class Lock:
    path: str
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)  # image as the profile says -> entry

    @property
    def pins(self) -> dict[str, str]:
        """Image -> ``repository@sha256:…``; local-only images are not pinned."""
        return {image: e["pinned"] for image, e in self.entries.items() if e.get("pinned")}

    @property
    def ids(self) -> dict[str, str]:
        """``repository@sha256:…`` -> the image id recorded with it (see ``images.local_images``)."""
        return {e["pinned"]: e["id"] for e in self.entries.values() if e.get("pinned") and e.get("id")}

    @property
    def unbundlable(self) -> list[str]:
        """Pinned images whose id was not recorded: after `load` nothing could match them."""
        return sorted(image for image, e in self.entries.items() if e.get("pinned") and not e.get("id"))


def lock_path(profile_path: str | None) -> Path:
    if profile_path is None or profile_path == DEFAULT_PROFILE:
        return Path(DEFAULT_LOCK)
    path = Path(profile_path)
    return path.with_name(path.stem + SUFFIX)


def read_lock(profile_path: str | None) -> Lock | None:
    path = lock_path(profile_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT or not isinstance(data.get("images"), dict):
            raise ValueError(f"not a format-{FORMAT} lock file")
        entries = {str(k): dict(v) for k, v in data["images"].items()}
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise LockError(f"{path}: cannot read it ({err}); run `albert-deploy lock` again or delete it") from None
    return Lock(str(path), entries)


def write_lock(profile_path: str | None, source: str, entries: dict[str, dict[str, Any]]) -> Path:
    path = lock_path(profile_path)
    text = json.dumps({"format": FORMAT, "profile": source, "images": entries}, indent=2, sort_keys=True) + "\n"
    try:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as err:
        raise LockError(f"{path}: cannot write it ({err.strerror}); check the directory's permissions") from None
    return path
