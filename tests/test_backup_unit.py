"""`backup` and `restore` without a daemon: the archive format, the sums, the refusals, and the order
of operations against a fake Docker API whose containers answer like postgres, redis and qdrant."""

from __future__ import annotations

import io
import json
import socket
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from albert_deploy import commands
from albert_deploy.backup import archive, restore, streams, take
from albert_deploy.backup import stores as stores_module
from albert_deploy.cli import cli
from albert_deploy.converge import stackops
from albert_deploy.converge.containers import PROJECT, SERVICE
from albert_deploy.errors import BackupError
from tests.helpers import FULL, SMALL

DUMP = b"-- PostgreSQL database dump\nCREATE TABLE public.tokens (id int);\n" * 100
PLAYGROUND_DUMP = b"-- PostgreSQL database dump\nCREATE TABLE public.conversations (id int);\n" * 50
RDB = b"REDIS0010" + bytes(range(256)) * 10
SNAPSHOT = b"qdrant snapshot bytes" * 1000


def _file_tar(name: str, data: bytes, uid: int = 0) -> list[bytes]:
    info = streams.regular(name, len(data), (uid, uid), 0o600)
    return [bytes(c) for c in streams.tar_stream([info], [[data[:1000], data[1000:]]])]


class Fake:
    """A stack of four running containers; records what is done to them."""

    def __init__(self, project: str, appendonly: str = "no", playground: bool = False) -> None:
        self.project, self.appendonly = project, appendonly
        self.services = ("redis", "postgres", "qdrant", "api", *(["playground"] if playground else []))
        self.api = self
        self.log: list[str] = []
        self.sql = b""
        self.sql_by_database: dict[str, bytes] = {}
        self.databases = {"api"}  # what the postgres server holds
        self.put: dict[str, bytes] = {}
        self.snapshots: dict[str, bytes] = {}

    # --- the Docker API, as far as backup and restore use it
    def containers(self, all: bool, filters: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"Id": s, "Names": [f"/{self.project}-{s}-1"], "State": "running", "Status": "Up",
             "Labels": {PROJECT: self.project, SERVICE: s}}
            for s in self.services
        ]  # fmt: skip

    def inspect_container(self, container: str) -> dict[str, Any]:
        user = "1000" if container == "qdrant" else ""
        return {
            "State": {"Running": True, "Status": "running", "Health": {"Status": "healthy"}},
            "Config": {"User": user},
        }

    def stop(self, container: str, timeout: int) -> None:
        self.log.append(f"stop {container}")

    def start(self, container: str) -> None:
        self.log.append(f"start {container}")

    def get_archive(self, container: str, path: str) -> tuple[Any, dict[str, Any]]:
        self.log.append(f"copy out {container}:{path}")
        data = RDB if container == "redis" else SNAPSHOT
        return iter(_file_tar(path.rsplit("/", 1)[-1], data, 999)), {}

    def put_archive(self, container: str, path: str, data: Any) -> bool:
        raw = b"".join(data) if not isinstance(data, bytes) else data
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            for m in tar.getmembers():
                if m.isfile():
                    stream = tar.extractfile(m)
                    assert stream is not None
                    self.put[f"{container}:{path}/{m.name}"] = stream.read()
        self.log.append(f"copy in {container}:{path}")
        return True

    # --- commands run in the containers (stackops.exec_stream)
    def exec_stream(self, client: Any, container: str, argv: list[str], **kw: Any) -> tuple[int, bytes]:
        sink = kw.get("sink") or (lambda _b: None)
        database = argv[4] if len(argv) > 4 else "api"  # none: the container's own (POSTGRES_DB)
        if argv[:2] == ["sh", "-c"] and "pg_dump" in argv[2]:
            assert 'PGPASSWORD="$POSTGRES_PASSWORD"' in argv[2]  # the container's own, never passed in
            sink(DUMP if database == "api" else PLAYGROUND_DUMP)
            self.log.append("pg_dump" if database == "api" else f"pg_dump {database}")
        elif argv[:2] == ["sh", "-c"] and argv[2] == stores_module.PSQL_ADMIN:
            sql = b"".join(kw["stdin"]).decode()
            if sql.startswith("SELECT 1 FROM pg_database"):
                sink(b"1\n" if sql.split("'")[1] in self.databases else b"")
            else:
                self.databases.add(sql.removeprefix("CREATE DATABASE ").rstrip(";"))
                self.log.append(sql)
        elif argv[:2] == ["sh", "-c"] and "psql" in argv[2]:
            self.sql_by_database[database] = b"".join(kw["stdin"])
            self.sql = self.sql_by_database.get("api", b"")
            self.log.append("psql" if database == "api" else f"psql {database}")
        elif argv[0] == "redis-cli":
            args = " ".join(argv[2:])
            answers = {
                "CONFIG GET dir": "dir\n/data\n", "CONFIG GET dbfilename": "dbfilename\ndump.rdb\n",
                "CONFIG GET appendonly": f"appendonly\n{self.appendonly}\n",
                "INFO persistence": "# Persistence\r\nrdb_bgsave_in_progress:0\r\nrdb_last_bgsave_status:ok\r\n",
                "INFO keyspace": "# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\n", "BGSAVE": "Background saving started",
            }  # fmt: skip
            self.log.append(f"redis {args}") if args == "BGSAVE" else None
            sink(answers[args].encode())
        elif argv[0] == "bash":
            method, path, body = argv[5], argv[6], argv[7]
            self.log.append(f"qdrant {method} {path}")
            sink(self._qdrant(method, path, body))
        else:
            raise AssertionError(argv)
        return 0, b""

    def _qdrant(self, method: str, path: str, body: str) -> bytes:
        if path == "/collections":
            result: Any = {"collections": [{"name": "docs"}, {"name": "faq"}]}
        elif method == "POST" and path.endswith("/snapshots?wait=true"):
            result = {"name": f"{path.split('/')[2]}-1.snapshot"}
        elif path.endswith("/recover?wait=true"):
            request = json.loads(body)
            assert request["priority"] == "snapshot" and request["location"].startswith("file:///qdrant/snapshots/")
            result = True
        else:
            result = True
        return b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + json.dumps({"result": result}).encode()


@pytest.fixture
def plan() -> Any:
    return commands.load(str(SMALL))


@pytest.fixture
def fake(plan: Any, monkeypatch: pytest.MonkeyPatch) -> Fake:
    made = Fake(plan.project)
    monkeypatch.setattr(stores_module.stackops, "exec_stream", made.exec_stream)
    return made


def _backup(fake: Fake, plan: Any, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    target = tmp_path / "site.backup.tar"
    result = take.backup(fake, plan, {"format": 1, "images": {}}, target, with_models=False)
    return target, result


def test_the_archive_lists_every_member_with_its_sum_release_store_and_lock(
    fake: Fake, plan: Any, tmp_path: Path
) -> None:
    target, result = _backup(fake, plan, tmp_path)
    assert "stop api" not in fake.log and not any(e.startswith("stop") for e in fake.log)  # online
    assert fake.log.index("pg_dump") < fake.log.index("redis BGSAVE")
    assert fake.log.count("qdrant DELETE /collections/docs/snapshots/docs-1.snapshot") == 1  # not left behind
    with tarfile.open(target) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert tar.extractfile("redis/dump.rdb").read() == RDB  # type: ignore[union-attr]
        assert tar.extractfile("postgres/dump.sql").read() == DUMP  # type: ignore[union-attr]
    assert names == [
        "manifest.json",
        "postgres/dump.sql",
        "qdrant/docs.snapshot",
        "qdrant/faq.snapshot",
        "redis/dump.rdb",
    ]
    assert manifest["format"] == archive.FORMAT and manifest["lock"] == {"format": 1, "images": {}}
    assert (manifest["release"], manifest["vector_store"], manifest["project"]) == ("0.2.0", "qdrant", plan.project)
    import hashlib

    assert manifest["members"]["redis/dump.rdb"] == {"size": len(RDB), "sha256": hashlib.sha256(RDB).hexdigest()}
    assert manifest["redis"]["uid"] == 999 and manifest["qdrant"]["collections"]["faq"]["snapshot"] == "faq-1.snapshot"
    assert result["stores"] == ["postgres", "redis", "qdrant"] and result["redis_keys"] == [
        "db0:keys=2,expires=0,avg_ttl=0"
    ]
    assert archive.verify(target)["members"] == manifest["members"]


def test_restore_verifies_then_replaces_with_the_api_stopped(fake: Fake, plan: Any, tmp_path: Path) -> None:
    target, _ = _backup(fake, plan, tmp_path)
    fake.log.clear()
    result = restore.restore(lambda: fake, plan, target)
    log = fake.log
    assert log[0] == "qdrant GET /collections" and log[1] == "stop api" and log[-1] == "start api"
    assert log.index("psql") < log.index("stop redis") < log.index("copy in redis:/data") < log.index("start redis")
    assert fake.sql == DUMP and fake.put["redis:/data/dump.rdb"] == RDB
    assert fake.put["qdrant:/qdrant/snapshots/docs/docs-1.snapshot"] == SNAPSHOT
    assert "qdrant PUT /collections/faq/snapshots/recover?wait=true" in log
    assert result["collections"] == ["docs", "faq"] and result["postgres"] and not result["notes"]


def test_the_playgrounds_database_is_backed_up_and_restored_with_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The playground keeps its conversations in a database of its own on the stack's postgres
    (0.2.0): dumped beside the API's, and restored into it (created first in a fresh volume) while
    the playground is stopped like the API."""
    profile = tmp_path / "with-playground.yaml"
    profile.write_text(SMALL.read_text() + "\nplayground: true\n")
    plan = commands.load(str(profile))
    fake = Fake(plan.project, playground=True)
    monkeypatch.setattr(stores_module.stackops, "exec_stream", fake.exec_stream)
    target, result = _backup(fake, plan, tmp_path)
    assert result["playground"] and "postgres/playground.sql" in result["members"]
    with tarfile.open(target) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest["playground"]["database"] == "playground"
    fake.log.clear()
    restored = restore.restore(lambda: fake, plan, target)
    log = fake.log
    assert {"stop api", "stop playground"} <= set(log[:3]) and {"start api", "start playground"} == set(log[-2:])
    assert log.index("CREATE DATABASE playground;") < log.index("psql playground")  # a fresh volume has none
    assert fake.sql_by_database == {"api": DUMP, "playground": PLAYGROUND_DUMP} and restored["playground"]
    fake.log.clear()
    restore.restore(lambda: fake, plan, target)
    assert not any(line.startswith("CREATE DATABASE") for line in fake.log)  # it exists now
    # Into a stack without the playground: the API's data only, and a note says so.
    without = commands.load(str(SMALL))
    other = Fake(without.project)
    monkeypatch.setattr(stores_module.stackops, "exec_stream", other.exec_stream)
    result = restore.restore(lambda: other, without, target)
    assert not result["playground"] and "playground" not in other.sql_by_database
    assert any("has no playground, so it was not restored: set `playground: true`" in n for n in result["notes"])


def _corrupt(path: Path, needle: bytes) -> Path:
    data = bytearray(path.read_bytes())
    data[data.index(needle)] ^= 1
    bad = path.with_name("bad.tar")
    bad.write_bytes(bytes(data))
    return bad


def test_a_corrupted_member_is_named_and_nothing_is_touched(fake: Fake, plan: Any, tmp_path: Path) -> None:
    target, _ = _backup(fake, plan, tmp_path)
    bad = _corrupt(target, b"REDIS0010")

    def connect() -> Any:
        raise AssertionError("a corrupted archive needs no daemon")

    with pytest.raises(BackupError, match=r"bad\.tar: member redis/dump\.rdb is corrupted.*Nothing was restored"):
        restore.restore(connect, plan, bad)
    result = CliRunner().invoke(cli, ["restore", str(bad), str(SMALL)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "member redis/dump.rdb" in result.stderr


def test_missing_extra_and_foreign_archives_are_refused(fake: Fake, plan: Any, tmp_path: Path) -> None:
    target, _ = _backup(fake, plan, tmp_path)
    with tarfile.open(target) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    short = tmp_path / "short.tar"
    with tarfile.open(short, "w") as tar:
        for m, data in members[:-1]:
            tar.addfile(m, io.BytesIO(data))
    with pytest.raises(BackupError, match=r"member redis/dump.rdb is missing"):
        archive.verify(short)
    extra = tmp_path / "extra.tar"
    with tarfile.open(extra, "w") as tar:
        for m, data in members:
            tar.addfile(m, io.BytesIO(data))
        tar.addfile(streams.regular("evil.sh", 2), io.BytesIO(b"hi"))
    with pytest.raises(BackupError, match=r"member evil.sh is not in the manifest: the backup was altered"):
        archive.verify(extra)
    bundle = tmp_path / "bundle.tar"
    with tarfile.open(bundle, "w") as tar:
        data = json.dumps({"format": "albert-deploy-bundle/1", "members": {}}).encode()
        tar.addfile(streams.regular("manifest.json", len(data)), io.BytesIO(data))
    with pytest.raises(BackupError, match=r"backup format 'albert-deploy-bundle/1' is not albert-deploy-backup/1"):
        archive.verify(bundle)
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(BackupError, match=r"not a readable backup"):
        archive.verify(tmp_path / "junk.tar")


def _profile(tmp_path: Path, base: Path = SMALL, **api: Any) -> str:
    data = yaml.safe_load(base.read_text())
    data["api"].update(api)
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_another_release_or_store_is_refused_before_any_change(fake: Fake, plan: Any, tmp_path: Path) -> None:
    target, _ = _backup(fake, plan, tmp_path)
    fake.log.clear()
    old = commands.load(_profile(tmp_path, FULL, release="0.0.3"))
    with pytest.raises(BackupError, match=r"release 0.2.0, but project .* runs 0.0.3.*Nothing was restored"):
        restore.restore(lambda: fake, old, target)
    elastic = commands.load(_profile(tmp_path, vector_store="elasticsearch"))
    with pytest.raises(BackupError, match=r"vector store qdrant, but project .* runs elasticsearch"):
        restore.restore(lambda: fake, elastic, target)
    with pytest.raises(BackupError, match=r"handle qdrant only.*snapshot repository"):
        take.backup(fake, elastic, None, tmp_path / "es.tar", with_models=False)
    assert fake.log == [] and not (tmp_path / "es.tar").exists()


def test_redis_with_an_append_only_file_is_refused_before_any_change(
    plan: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = Fake(plan.project)
    monkeypatch.setattr(stores_module.stackops, "exec_stream", fake.exec_stream)
    target, _ = _backup(fake, plan, tmp_path)
    fake.appendonly, fake.log = "yes", []
    with pytest.raises(BackupError, match=r"appendonly yes.*Nothing was restored"):
        restore.restore(lambda: fake, plan, target)
    assert fake.log == [] and fake.put == {}


def test_a_stopped_store_is_refused_and_no_archive_is_left(fake: Fake, plan: Any, tmp_path: Path) -> None:
    rows = fake.containers(True, {})
    fake.containers = lambda all, filters: [{**r, "State": "exited" if r["Id"] == "redis" else "running"} for r in rows]  # type: ignore[method-assign]
    with pytest.raises(BackupError, match=r"service redis of project .* is not running: run `albert-deploy up`"):
        _backup(fake, plan, tmp_path)
    assert list(tmp_path.iterdir()) == [] and fake.log == []


def test_qdrant_answers_are_parsed_and_errors_are_one_line() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + b'{"result": {"name": "a"}, "status": "ok"}'
    assert stores_module.parse_http(ok, "x") == {"name": "a"}
    with pytest.raises(BackupError, match=r"qdrant GET /x: HTTP 401 Must provide an API key"):
        stores_module.parse_http(b"HTTP/1.0 401 Unauthorized\r\n\r\nMust provide an API key", "qdrant GET /x")
    with pytest.raises(BackupError, match=r"HTTP \?"):
        stores_module.parse_http(b"", "qdrant GET /x")
    with pytest.raises(BackupError, match=r"not a qdrant answer"):
        stores_module.parse_http(b"HTTP/1.0 200 OK\r\n\r\n[]", "x")
    assert stores_module.collection_path("a b/c", "snapshots") == "/collections/a%20b%2Fc/snapshots"


def test_tar_streams_round_trip_and_refuse_a_wrong_size() -> None:
    meta: dict[str, Any] = {}
    assert b"".join(streams.only_file(_file_tar("dump.rdb", RDB, 999), meta)) == RDB
    assert meta == {"size": len(RDB), "uid": 999, "gid": 999, "mode": 0o600}
    with pytest.raises(ValueError, match=r"no file"):
        list(streams.only_file(list(streams.tar_stream([streams.directory("d")], [None])), {}))
    with pytest.raises(ValueError, match=r"3 bytes, not 4"):
        list(streams.tar_stream([streams.regular("f", 4)], [[b"abc"]]))
    reader = streams.ChunkReader([b"ab", b"cd", b"e"])
    assert (reader.read(3), reader.read(-1), reader.read(1)) == (b"abc", b"de", b"")


def test_exec_stream_sends_stdin_and_streams_stdout_and_stderr() -> None:
    ours, theirs = socket.socketpair()
    received = bytearray()

    def daemon() -> None:
        while chunk := theirs.recv(65536):
            received.extend(chunk)
        theirs.sendall(b"\x01\x00\x00\x00\x00\x00\x00\x03out" + b"\x02\x00\x00\x00\x00\x00\x00\x04oops")
        theirs.close()

    thread = threading.Thread(target=daemon)
    thread.start()

    class Api:
        def exec_create(self, *a: Any, **k: Any) -> dict[str, str]:
            assert k["environment"] == {} and k["stdin"] is True
            return {"Id": "e"}

        def exec_start(self, *a: Any, **k: Any) -> Any:
            return ours

        def exec_inspect(self, *a: Any) -> dict[str, int]:
            return {"ExitCode": 3}

    client = type("C", (), {"api": Api()})()
    out: list[bytes] = []
    code, err = stackops.exec_stream(client, "c", ["x"], stdin=iter([b"a" * 100000, b"b"]), sink=out.append)
    thread.join()
    assert (code, err, b"".join(out), bytes(received)) == (3, b"oops", b"out", b"a" * 100000 + b"b")


def test_the_commands_are_on_the_cli(fake: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from albert_deploy.converge import engine

    monkeypatch.setattr(engine, "connect", lambda: fake)
    target = tmp_path / "b.tar"
    made = CliRunner().invoke(cli, ["backup", str(SMALL), "-o", str(target)])
    assert made.exit_code == 0, made.output
    assert f"Wrote {target.resolve()}" in made.output and "redis keyspace: db0:keys=2" in made.output
    back = CliRunner().invoke(cli, ["restore", str(target), str(SMALL)])
    assert back.exit_code == 0, back.output
    assert "qdrant: 2 collection(s) docs, faq" in back.output and "postgres: the dump" in back.output
