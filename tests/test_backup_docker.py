"""`backup` and `restore` against the real daemon, with the real postgres and redis (Debian's, in
the test images) and the stand-in qdrant (snapshots as qdrant's REST API at v1.11.5, see
tests/standins/facts.py).

Rows (in the API's database and the playground's), keys and points are written, backed up, the stack is removed with its volumes and brought up
empty, the backup is restored and every row, key and point is found again. A corrupted archive
changes nothing. The ``deploy`` fixture removes everything by label, pass or fail.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from albert_deploy.backup import stores
from albert_deploy.cli import cli
from tests.helpers import Deployment

pytestmark = pytest.mark.docker

ROWS = [(i, f"user-{i}", "é ' \" \\ ;") for i in range(1, 51)]
KEYS = {f"limiter:user-{i}": str(i * 7) for i in range(1, 21)}
POINTS = [{"id": i, "vector": [0.1 * i, 0.2], "payload": {"doc": f"d{i}"}} for i in range(1, 6)]


def _psql(d: Deployment, sql: str, database: str = "api") -> str:
    code, out = d.container("postgres").exec_run(["psql", "-X", "-U", "postgres", "-d", database, "-tAc", sql])
    assert code == 0, out
    return str(out.decode())


def _redis(d: Deployment, *args: str) -> str:
    code, out = d.container("redis").exec_run(["redis-cli", "-e", *args])
    assert code == 0, out
    return str(out.decode()).strip()


def _qdrant(d: Deployment, method: str, path: str, body: Any = None) -> Any:
    return stores.qdrant(d.client, d.container("qdrant").id, 6333, method, path, body)


def _restore(d: Deployment, archive: Path, *args: str) -> Result:
    """`restore FILE PROFILE` (Deployment.cli puts the profile first)."""
    return CliRunner().invoke(cli, ["restore", str(archive), str(d.profile), *args], catch_exceptions=False)


def _write(d: Deployment) -> None:
    _psql(d, "CREATE TABLE tokens (id int PRIMARY KEY, name text, note text)")
    values = ",".join(f"({i}, '{n}', '{note.replace(chr(39), chr(39) * 2)}')" for i, n, note in ROWS)
    _psql(d, f"INSERT INTO tokens VALUES {values}")
    for key, value in KEYS.items():
        assert _redis(d, "SET", key, value) == "OK"
    _qdrant(d, "PUT", "/collections/documents", {"vectors": {"size": 2, "distance": "Cosine"}})
    _qdrant(d, "PUT", "/collections/documents/points", {"points": POINTS})
    _psql(d, "CREATE TABLE conversations (id int PRIMARY KEY, title text)", "playground")
    _psql(d, "INSERT INTO conversations VALUES (1, 'bonjour'), (2, 'merci')", "playground")


def _read(d: Deployment) -> tuple[list[tuple[int, str, str]], dict[str, str], list[Any]]:
    text = _psql(d, "SELECT json_agg(t ORDER BY t.id) FROM tokens t")
    rows = [(r["id"], r["name"], r["note"]) for r in json.loads(text)]
    keys = {k: _redis(d, "GET", k) for k in KEYS}
    points = _qdrant(d, "POST", "/collections/documents/points/scroll", {"limit": 100})["points"]
    return rows, keys, points


def test_backup_down_volumes_up_restore_finds_every_row_key_and_point(
    deploy: Callable[..., Deployment], tmp_path: Path
) -> None:
    d = deploy()
    d.data["images"]["playground"] = "albert-deploy-test/playground:1"
    d.edit(playground=True)  # its conversations live in a database of its own on the same postgres
    d.up()
    _write(d)
    archive = tmp_path / "site.backup.tar"
    ids = d.ids()
    made = d.cli("backup", "-o", str(archive), "--json")
    assert made.exit_code == 0, made.output
    result = json.loads(made.stdout)
    assert d.ids() == ids and all(d.container(s).status == "running" for s in ids)  # online: nothing stopped
    assert result["stores"] == ["postgres", "redis", "qdrant"] and result["collections"] == ["documents"]
    assert any("keys=20" in line for line in result["redis_keys"])
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert names[0] == "manifest.json" and set(names[1:]) == set(manifest["members"])
    assert {"postgres/dump.sql", "postgres/playground.sql", "redis/dump.rdb", "qdrant/documents.snapshot"} == set(
        manifest["members"]
    )
    assert (manifest["release"], manifest["vector_store"], manifest["lock"]) == ("0.2.0", "qdrant", None)
    env = (d.out / ".env").read_text()
    secrets = [line.split("=", 1)[1].strip().strip("'\"") for line in env.splitlines() if "=" in line]
    raw = archive.read_bytes()
    assert all(s.encode() not in raw for s in secrets if len(s) > 8)  # no password in the archive
    assert all(s not in made.output for s in secrets if len(s) > 8)

    assert d.cli("down", "--volumes").exit_code == 0
    d.up()
    assert _psql(d, "SELECT to_regclass('tokens')").strip() == "" and _redis(d, "DBSIZE") == "0"
    assert _psql(d, "SELECT to_regclass('conversations')", "playground").strip() == ""

    # A corrupted copy: refused before anything changes, one line naming the file and the member.
    bad = tmp_path / "bad.tar"
    data = bytearray(raw)
    offset = raw.index(b"CREATE TABLE public.tokens")
    data[offset] ^= 0x20
    bad.write_bytes(bytes(data))
    _redis(d, "SET", "fresh", "1")
    refused = _restore(d, bad)
    assert refused.exit_code == 1
    assert refused.stderr.strip().count("\n") == 0
    assert (
        f"{bad}: member postgres/dump.sql is corrupted" in refused.stderr and "Nothing was restored" in refused.stderr
    )
    assert _redis(d, "DBSIZE") == "1" and _psql(d, "SELECT to_regclass('tokens')").strip() == ""
    assert d.ids().keys() == ids.keys() and all(d.container(s).status == "running" for s in ids)

    restored = _restore(d, archive, "--json")
    assert restored.exit_code == 0, restored.output
    rows, keys, points = _read(d)
    assert rows == ROWS and keys == KEYS
    assert sorted(points, key=lambda p: p["id"]) == POINTS
    assert _redis(d, "EXISTS", "fresh") == "0"  # the backup's keyspace, not a merge
    assert (
        _psql(d, "SELECT string_agg(title, ',' ORDER BY id) FROM conversations", "playground").strip()
        == "bonjour,merci"
    )
    assert all(d.container(s).status == "running" for s in ids)
    assert d.container("api").attrs["State"]["Health"]["Status"] == "healthy"
    took = json.loads(restored.stdout)["seconds"]
    print(f"backup {result['seconds']} s ({result['size']} bytes), restore {took} s")  # figures for the notes
