"""The backup archive: an uncompressed tar, ``manifest.json`` first, every other member listed in
it with its size and sha256 (the bundle's layout, see ``airgap/bundle.py``)::

    manifest.json          format, release, vector store, project, the profile's lock, per-store facts
    postgres/dump.sql      pg_dump, plain SQL with --clean --if-exists (0.2.0 only: 0.0.3 has no postgres)
    redis/dump.rdb         the RDB file written by BGSAVE
    qdrant/<collection>.snapshot   one qdrant snapshot per collection
    volumes/<volume>.tar   model caches, only with --with-models
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from albert_deploy.airgap import unbundle
from albert_deploy.airgap.bundle import CHUNK, MANIFEST, Hashing, add_member, store_member
from albert_deploy.errors import BackupError

FORMAT = "albert-deploy-backup/1"


class Staging:
    """Members written one by one into a temporary directory beside the target, then one tar; the
    target appears only once complete (a failed backup leaves nothing behind)."""

    def __init__(self, target: Path) -> None:
        self.target = target.resolve()
        try:
            self.work = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", dir=self.target.parent))
        except OSError as err:
            raise BackupError(
                f"{self.target}: cannot write there ({err.strerror}); choose another place with -o"
            ) from None
        self.members: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.work, ignore_errors=True)

    def add(self, name: str, chunks: Iterable[bytes]) -> None:
        store_member(self.work, self.members, name, iter(chunks))

    @contextlib.contextmanager
    def writer(self, name: str) -> Iterator[Callable[[bytes], object]]:
        """A member written by whoever pushes bytes (``pg_dump``'s output as it comes)."""
        path = self.work / "members" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as raw:
            out = Hashing(raw)
            yield out.write
        self.members[name] = {"size": out.size, "sha256": out.sha.hexdigest()}

    def finish(self, manifest: dict[str, Any]) -> dict[str, Any]:
        manifest = {**manifest, "format": FORMAT, "members": self.members}
        partial = self.work / "backup.tar"
        try:
            with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
                data = json.dumps(manifest, indent=2, sort_keys=True).encode()
                add_member(tar, MANIFEST, io.BytesIO(data), len(data))
                for name, meta in self.members.items():
                    with open(self.work / "members" / name, "rb") as stream:
                        add_member(tar, name, stream, meta["size"])
            partial.replace(self.target)
        except OSError as err:
            raise BackupError(f"{self.target}: cannot write the backup ({err.strerror})") from None
        return manifest


def verify(path: Path) -> dict[str, Any]:
    """The manifest once every member matches its size and sha256; else a one-line BackupError
    naming the file and the bad member. Reads the whole archive; changes nothing."""
    manifest = unbundle.verify(path, FORMAT, "backup", BackupError)
    for key in ("release", "vector_store", "project"):
        if not isinstance(manifest.get(key), str):
            raise BackupError(
                f"{path}: the manifest has no {key}: not a backup this version can restore. Nothing was restored"
            )
    return manifest


def member_chunks(tar: tarfile.TarFile, name: str) -> Iterator[bytes]:
    stream = tar.extractfile(tar.getmember(name))
    if stream is None:
        raise BackupError(f"member {name} is not a file")
    return iter(lambda: stream.read(CHUNK), b"")
