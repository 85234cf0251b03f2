"""`restore`: put a backup (see ``archive.py``) back into a running stack's volumes.

Order: verify every member's sha256 and the manifest (a bad archive changes nothing); refuse a
stack of another release or vector store; check every container it needs runs and redis keeps no
append-only file; then stop the API and the playground (nothing writes while the data is replaced),
restore postgres (one transaction; the playground's database too, created if missing, when the stack
has one), qdrant (per collection), redis (stop, replace its RDB, start), the model caches if the
archive has them, and start the API and the playground again.
"""

from __future__ import annotations

import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from albert_deploy.airgap.bundle import VOLUME_ROOT, volume_helper
from albert_deploy.backup import streams
from albert_deploy.backup.archive import member_chunks, verify
from albert_deploy.backup.stores import (
    pg_create_missing,
    psql_restore,
    qdrant_collections,
    qdrant_recover,
    redis,
    redis_config,
    running,
    wait_healthy,
)
from albert_deploy.backup.take import refuse_elasticsearch, store_containers
from albert_deploy.converge import containers, engine
from albert_deploy.errors import BackupError
from albert_deploy.plan.build import Plan


def check_fits(path: Path, manifest: dict[str, Any], plan: Plan) -> None:
    """Refuse a stack whose release or vector store differs from the backup's."""
    for key, have in (("release", plan.release.version), ("vector_store", plan.vector_store)):
        if manifest[key] != have:
            raise BackupError(
                f"{path}: backed up from a stack with {key.replace('_', ' ')} {manifest[key]}, but project "
                f"{plan.project} runs {have}: restore into a stack of the same {key.replace('_', ' ')} (upgrade after "
                "restoring; RUNBOOK.md). Nothing was restored"
            )
    refuse_elasticsearch(plan)
    if "postgres" in manifest and not any(s.name == "postgres" for s in plan.services):
        raise BackupError(
            f"{path}: holds a postgres dump but project {plan.project} has no postgres. Nothing was restored"
        )


def restore(connect: Callable[[], Any], plan: Plan, path: Path) -> dict[str, Any]:
    """``connect`` is called only once the archive is verified: a corrupted one needs no daemon."""
    t0 = time.monotonic()
    manifest = verify(path)
    check_fits(path, manifest, plan)
    client = connect()
    found = store_containers(client, plan)
    port = next(s.container_port for s in plan.services if s.name == "qdrant") or 6333
    if redis_config(client, found["redis"], "appendonly") == "yes":
        raise BackupError(
            "redis runs with appendonly yes: it would load its append-only file, not the restored RDB. Nothing was restored"
        )
    before = set(qdrant_collections(client, found["qdrant"], port))  # qdrant answers, with its key
    # What writes to the stores (the API; the playground, to its database) is stopped meanwhile.
    writers = {
        s.name: running(client, plan.project, s.name).id for s in plan.services if s.role in ("api", "playground")
    }
    playground: dict[str, Any] = manifest.get("playground") or {}
    playground_restored = bool(playground) and plan.playground_database == playground["database"]
    for writer in writers.values():
        client.api.stop(writer, timeout=containers.STOP_TIMEOUT_S)
    try:
        with tarfile.open(path, "r:") as tar:
            if "postgres" in manifest:
                psql_restore(client, found["postgres"], member_chunks(tar, manifest["postgres"]["member"]))
            if playground_restored:
                pg_create_missing(client, found["postgres"], playground["database"])
                psql_restore(
                    client, found["postgres"], member_chunks(tar, playground["member"]), playground["database"]
                )
            collections = manifest["qdrant"]["collections"]
            for name, meta in sorted(collections.items()):
                data = member_chunks(tar, meta["member"])
                qdrant_recover(client, found["qdrant"], port, name, meta["snapshot"], data, meta["size"])
            keys = _redis(client, found["redis"], manifest["redis"], tar)
            _volumes(client, plan.project, manifest["volumes"], tar)
    finally:
        for writer in writers.values():
            client.api.start(writer)
        for service, writer in writers.items():
            wait_healthy(client, writer, service)
    notes = []
    if playground and not playground_restored:
        notes.append(
            f"the backup holds the playground's database, but project {plan.project} has no playground, so it was "
            "not restored: set `playground: true` in the profile, run `albert-deploy up`, then restore again"
        )
    if manifest["project"] != plan.project:
        notes.append(f"backed up from project {manifest['project']}, restored into {plan.project}")
    return {
        "backup": str(path),
        "project": plan.project,
        "release": manifest["release"],
        "vector_store": manifest["vector_store"],
        "created": manifest.get("created", ""),
        "postgres": "postgres" in manifest,
        "playground": playground_restored,
        "collections": sorted(collections),
        "collections_not_in_backup": sorted(before - set(collections)),
        "redis_keys": keys,
        "volumes": sorted(manifest["volumes"]),
        "notes": notes,
        "seconds": round(time.monotonic() - t0, 1),
    }


def _redis(client: Any, container: str, meta: dict[str, Any], tar: tarfile.TarFile) -> list[str]:
    """Redis reads its RDB only at start: stop it (its last save on shutdown is overwritten), put
    the file in its volume, start it, and report its keyspace."""
    directory, name = redis_config(client, container, "dir"), redis_config(client, container, "dbfilename")
    client.api.stop(container, timeout=containers.STOP_TIMEOUT_S)
    entry = streams.regular(name, int(meta["size"]), (int(meta["uid"]), int(meta["gid"])), int(meta["mode"]))
    client.api.put_archive(container, directory, streams.tar_stream([entry], [member_chunks(tar, meta["member"])]))
    client.api.start(container)
    wait_healthy(client, container, "redis")
    return [line for line in redis(client, container, "INFO", "keyspace").splitlines() if line.startswith("db")]


def _volumes(client: Any, project: str, volumes: dict[str, dict[str, Any]], tar: tarfile.TarFile) -> None:
    """Model caches (``--with-models``), put back as ``load`` does."""
    for volume, meta in sorted(volumes.items()):
        engine.ensure_volume(client, project, meta["volume"])
        with volume_helper(client, project, volume, meta["image_id"]) as helper:
            stream = tar.extractfile(tar.getmember(meta["member"]))
            client.api.put_archive(helper, VOLUME_ROOT, stream)
