"""Each database's own online method, run inside its own container (found by its labels).

No secret leaves a container: every command reads the password the container was started with
(from the stack's .env) from that container's environment. None is passed in a command line,
printed, or written into an archive.

- postgres: ``pg_dump`` (plain SQL, ``--clean --if-exists``) out, ``psql --single-transaction`` in.
- redis: ``BGSAVE`` (a fork writes the RDB while the server keeps serving), then the file is copied
  out of the container; back in: stop, replace the file in the volume, start (redis reads its RDB
  only at start, so there is no online way in).
- qdrant: one snapshot per collection through its REST API, copied out of the container; back in:
  copied into the snapshots directory, then recovered from that ``file://`` location, as qdrant's
  own upload route does (qdrant/qdrant@v1.11.5 src/actix/api/snapshot_api.rs:76-115, 165-212).
  The HTTP calls run in the qdrant container with bash's /dev/tcp (its image has bash, no curl).
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from albert_deploy.backup import streams
from albert_deploy.converge import reconcile, stackops
from albert_deploy.converge.engine import list_containers
from albert_deploy.errors import BackupError

# qdrant/qdrant@v1.11.5 config/config.yaml:17 (snapshots_path: ./snapshots, WORKDIR /qdrant), made and
# owned by the -unprivileged user in the image (Dockerfile:153-160) and at start (lib/storage/src/
# content_manager/toc/mod.rs:93), one directory per collection (toc/snapshots.rs:28-37).
QDRANT_SNAPSHOTS = "/qdrant/snapshots"
# Recovery prefers the snapshot over the current state (lib/collection/src/operations/snapshot_ops.rs:18-28).
QDRANT_PRIORITY = "snapshot"
_QDRANT_HTTP = (
    'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 7; '
    'printf "%s %s HTTP/1.0\\r\\nHost: localhost\\r\\napi-key: %s\\r\\nContent-Type: application/json\\r\\n'
    'Content-Length: %s\\r\\n\\r\\n%s" "$2" "$3" "${QDRANT__SERVICE__API_KEY:-}" "${#4}" "$4" >&3; cat <&3'
)
# $1: the database; none means the container's own (POSTGRES_DB, the API's).
PG_DUMP = (
    'PGPASSWORD="$POSTGRES_PASSWORD" exec pg_dump --no-password --clean --if-exists -U "$POSTGRES_USER" '
    '"${1:-$POSTGRES_DB}"'
)
PSQL = (
    'PGPASSWORD="$POSTGRES_PASSWORD" exec psql -X -q --no-password -v ON_ERROR_STOP=1 --single-transaction '
    '-U "$POSTGRES_USER" -d "${1:-$POSTGRES_DB}"'
)
# SQL on stdin, run in the container's own database (an existing one, to create another from).
PSQL_ADMIN = 'PGPASSWORD="$POSTGRES_PASSWORD" exec psql -X -q -t -A --no-password -U "$POSTGRES_USER" -d "$POSTGRES_DB"'
PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_]*")  # needs no quoting in SQL
WAIT_S = 300.0


def running(client: Any, project: str, service: str) -> reconcile.Actual:
    """The service's container, by its labels; refused unless it runs."""
    found = sorted((c for c in list_containers(client, project) if c.service == service), key=lambda c: c.number)
    if not found or found[0].state != "running":
        raise BackupError(f"service {service} of project {project} is not running: run `albert-deploy up` first")
    return found[0]


def run(
    client: Any,
    container: str,
    argv: list[str],
    what: str,
    stdin: Iterator[bytes] | None = None,
    sink: Callable[[bytes], object] | None = None,
) -> bytes:
    """Run ``argv``; its stdout goes to ``sink`` as it comes, or is returned. A BackupError with
    the last line of its stderr when it fails."""
    out = bytearray()
    code, err = stackops.exec_stream(client, container, argv, stdin=stdin, sink=sink or out.extend)
    if code != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines() or [f"exit code {code}"]
        raise BackupError(f"{what} failed: {lines[-1][:300]}")
    return bytes(out)


# --- postgres ------------------------------------------------------------------------------------


def pg_dump(client: Any, container: str, sink: Callable[[bytes], object], database: str = "") -> None:
    argv = ["sh", "-c", PG_DUMP, "pg_dump", *([database] if database else [])]
    run(client, container, argv, f"pg_dump{' of ' + database if database else ''} in the postgres container", sink=sink)


def psql_restore(client: Any, container: str, sql: Iterator[bytes], database: str = "") -> None:
    argv = ["sh", "-c", PSQL, "psql", *([database] if database else [])]
    what = f"psql (restoring the dump{' of ' + database if database else ''}) in the postgres container"
    run(client, container, argv, what, stdin=sql)


def pg_create_missing(client: Any, container: str, database: str) -> None:
    """Create ``database`` unless it exists (a stack's own extra database, in a fresh volume)."""
    if not PLAIN_NAME.fullmatch(database):
        raise BackupError(f"internal error: database name {database!r} is not a plain name; please report it")
    exists = f"SELECT 1 FROM pg_database WHERE datname = '{database}';".encode()
    found = run(client, container, ["sh", "-c", PSQL_ADMIN], f"psql (looking for {database})", stdin=iter([exists]))
    if found.strip() != b"1":
        create = f"CREATE DATABASE {database};".encode()
        run(client, container, ["sh", "-c", PSQL_ADMIN], f"psql (creating {database})", stdin=iter([create]))


# --- redis ---------------------------------------------------------------------------------------


def redis(client: Any, container: str, *args: str) -> str:
    """One redis-cli command (``-e``: an error reply fails it); REDISCLI_AUTH is the container's."""
    return run(client, container, ["redis-cli", "-e", *args], f"redis-cli {args[0]}").decode().strip()


def redis_config(client: Any, container: str, key: str) -> str:
    lines = redis(client, container, "CONFIG", "GET", key).splitlines()
    return lines[1] if len(lines) > 1 else ""


def redis_save(client: Any, container: str) -> dict[str, Any]:
    """BGSAVE, wait until it is written, and say where the file is (https://redis.io/docs/latest/commands/bgsave/)."""
    _redis_idle(client, container)
    redis(client, container, "BGSAVE")
    info = _redis_idle(client, container)
    if "rdb_last_bgsave_status:ok" not in info:
        raise BackupError("redis BGSAVE failed (INFO persistence: rdb_last_bgsave_status is not ok); see its logs")
    keyspace = [line for line in redis(client, container, "INFO", "keyspace").splitlines() if line.startswith("db")]
    return {
        "dir": redis_config(client, container, "dir"),
        "dbfilename": redis_config(client, container, "dbfilename"),
        "appendonly": redis_config(client, container, "appendonly"),
        "keyspace": keyspace,
    }


def _redis_idle(client: Any, container: str) -> str:
    deadline = time.monotonic() + WAIT_S
    while True:
        info = redis(client, container, "INFO", "persistence")
        if "rdb_bgsave_in_progress:0" in info:
            return info
        if time.monotonic() > deadline:
            raise BackupError(f"redis still saving after {WAIT_S:.0f} s; try again later")
        time.sleep(0.2)


# --- qdrant --------------------------------------------------------------------------------------


def qdrant(client: Any, container: str, port: int, method: str, path: str, body: Any = None) -> Any:
    """One call to qdrant's REST API from inside its container; its ``result``."""
    payload = json.dumps(body) if body is not None else ""  # ASCII: bash's ${#4} counts bytes then
    argv = ["bash", "-c", _QDRANT_HTTP, "qdrant-http", str(port), method, path, payload]
    answer = run(client, container, argv, f"qdrant {method} {path}")
    return parse_http(answer, f"qdrant {method} {path}")


def parse_http(answer: bytes, what: str) -> Any:
    head, _, body = answer.partition(b"\r\n\r\n")
    words = head.split(b"\r\n", 1)[0].split()
    status = int(words[1]) if len(words) > 1 and words[1].isdigit() else 0
    if not 200 <= status < 300:
        text = body.decode("utf-8", "replace").strip().replace("\n", " ")[:300]
        raise BackupError(f"{what}: HTTP {status or '?'} {text}".rstrip())
    try:
        return json.loads(body)["result"]
    except (ValueError, KeyError, TypeError):
        raise BackupError(f"{what}: not a qdrant answer") from None


def collection_path(name: str, *rest: str) -> str:
    return "/".join(["/collections", urllib.parse.quote(name, safe=""), *rest])


def qdrant_collections(client: Any, container: str, port: int) -> list[str]:
    # GET /collections: qdrant/qdrant@v1.11.5 src/actix/api/collections_api.rs:33
    return sorted(c["name"] for c in qdrant(client, container, port, "GET", "/collections")["collections"])


def qdrant_snapshot(client: Any, container: str, port: int, collection: str, meta: dict[str, Any]) -> Iterator[bytes]:
    """Create a snapshot (snapshot_api.rs:149-163), stream its file out, then delete it (:302-322)."""
    created = qdrant(client, container, port, "POST", collection_path(collection, "snapshots") + "?wait=true")
    name = str(created["name"])
    meta["snapshot"] = name
    try:
        stream, _ = client.api.get_archive(container, f"{QDRANT_SNAPSHOTS}/{collection}/{name}")
        yield from streams.only_file(stream, meta)
    finally:
        qdrant(client, container, port, "DELETE", collection_path(collection, "snapshots", name))


def qdrant_recover(
    client: Any, container: str, port: int, collection: str, snapshot: str, data: Iterator[bytes], size: int
) -> None:
    """Copy the snapshot into the collection's snapshots directory, recover from it, delete it."""
    owner = _user(client, container)
    entries = [streams.directory(collection, owner), streams.regular(f"{collection}/{snapshot}", size, owner)]
    client.api.put_archive(container, QDRANT_SNAPSHOTS, streams.tar_stream(entries, [None, data]))
    location = f"file://{QDRANT_SNAPSHOTS}/{urllib.parse.quote(collection)}/{urllib.parse.quote(snapshot)}"
    try:
        qdrant(client, container, port, "PUT", collection_path(collection, "snapshots", "recover") + "?wait=true",
               {"location": location, "priority": QDRANT_PRIORITY})  # fmt: skip
    finally:
        qdrant(client, container, port, "DELETE", collection_path(collection, "snapshots", snapshot))


def _user(client: Any, container: str) -> int:
    user = str((client.api.inspect_container(container).get("Config") or {}).get("User") or "0").split(":")[0]
    return int(user) if user.isdigit() else 0


def wait_healthy(client: Any, container: str, service: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        state = client.api.inspect_container(container).get("State") or {}
        health = (state.get("Health") or {}).get("Status")
        if state.get("Running") and health in (None, "healthy"):
            return
        if not state.get("Running") or time.monotonic() > deadline:
            raise BackupError(
                f"service {service} did not come back healthy (state {state.get('Status')}, health {health}): "
                f"see `albert-deploy logs {service}`"
            )
        time.sleep(0.5)
