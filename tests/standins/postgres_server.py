"""Stand-in for postgres:16 in tests: the wire protocol's handshake, no SQL.

Behaves like the real image from the outside:
- data in $PGDATA (/var/lib/postgresql/data), owned by uid 999, which the server drops to;
- the first start "initialises" (writes PG_VERSION and a marker) while listening on the Unix
  socket only, then restarts and listens on TCP 5432: so ``pg_isready`` without ``-h`` reports
  ready too early, exactly like the real one;
- POSTGRES_PASSWORD is required on first start and ignored afterwards (the stored one wins);
- logins check user, password (cleartext auth here, SCRAM in the real one) and database name,
  with the real error codes (28P01, 3D000).
Knobs: STANDIN_INIT_SECONDS (first-start init, default 1.5), STANDIN_START_DELAY (before TCP),
STANDIN_FAIL=never-healthy (TCP never opens) or exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

SOCKET_DIR = "/var/run/postgresql"
PROTOCOL_3 = 196608
SSL_REQUEST, GSS_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
MARKER = "standin-cluster.json"


def message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def error(code: str, text: str, severity: str = "FATAL") -> bytes:
    fields = b"".join(
        k + v.encode() + b"\0" for k, v in ((b"S", severity), (b"V", severity), (b"C", code), (b"M", text))
    )
    return message(b"E", fields + b"\0")


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    return data


class PgHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, OSError, struct.error):  # clients may hang up anywhere
            self.session(self.request, self.server.cluster)  # type: ignore[attr-defined]

    def session(self, sock: socket.socket, cluster: dict) -> None:
        while True:  # SSL/GSS requests come before the real startup packet
            length, code = struct.unpack("!II", recv_exact(sock, 8))
            body = recv_exact(sock, length - 8)
            if code in (SSL_REQUEST, GSS_REQUEST):
                sock.sendall(b"N")
                continue
            if code != PROTOCOL_3:
                return sock.sendall(error("08P01", f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}"))
            break
        items = body.split(b"\0")
        params = {items[i].decode(): items[i + 1].decode() for i in range(0, len(items) - 1, 2) if items[i]}
        user = params.get("user", "")
        database = params.get("database") or user
        if cluster.get("password") is not None:
            sock.sendall(message(b"R", struct.pack("!I", 3)))  # cleartext password, please
            kind, size = struct.unpack("!cI", recv_exact(sock, 5))
            password = recv_exact(sock, size - 4).rstrip(b"\0").decode()
            if kind != b"p" or user != cluster["user"] or password != cluster["password"]:
                return sock.sendall(error("28P01", f'password authentication failed for user "{user}"'))
        elif user != cluster["user"]:
            return sock.sendall(error("28000", f'role "{user}" does not exist'))
        if database not in (cluster["database"], "postgres", "template1"):
            return sock.sendall(error("3D000", f'database "{database}" does not exist'))
        ready = message(b"Z", b"I")
        status = b"".join(
            message(b"S", f"{k}\0{v}\0".encode()) for k, v in (("server_version", "16.4"), ("client_encoding", "UTF8"))
        )
        sock.sendall(
            message(b"R", struct.pack("!I", 0)) + status + message(b"K", struct.pack("!II", os.getpid(), 1)) + ready
        )
        while True:
            kind, size = struct.unpack("!cI", recv_exact(sock, 5))
            payload = recv_exact(sock, size - 4)
            if kind == b"X":
                return
            query = payload.rstrip(b"\0").decode(errors="replace").strip().rstrip(";").strip().lower()
            if kind == b"Q" and query == "select 1":
                column = b"?column?\0" + struct.pack("!IhIhih", 0, 0, 23, 4, -1, 0)
                row = struct.pack("!hI", 1, 1) + b"1"
                sock.sendall(
                    message(b"T", struct.pack("!h", 1) + column)
                    + message(b"D", row)
                    + message(b"C", b"SELECT 1\0")
                    + ready
                )
            else:
                sock.sendall(error("0A000", "the stand-in postgres runs no SQL besides SELECT 1", "ERROR") + ready)


class TcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def listen(server_cls: type, address: object, cluster: dict) -> socketserver.BaseServer:
    if isinstance(address, str) and os.path.exists(address):
        os.unlink(address)  # a stale socket from before a restart, as the real server clears it
    server = server_cls(address, PgHandler)
    server.cluster = cluster  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    return server


def become_postgres(pgdata: str) -> None:
    """The real entrypoint runs as root only to fix ownership, then drops to postgres (999)."""
    if os.getuid() != 0:
        return
    for path in (pgdata, SOCKET_DIR):
        os.makedirs(path, exist_ok=True)
        os.chown(path, 999, 999)
    os.chmod(pgdata, 0o700)
    os.setgroups([])
    os.setgid(999)
    os.setuid(999)


def initialise(pgdata: str, port: int) -> dict:
    """First start: refuse like the real entrypoint would, else init while only the socket listens."""
    if os.listdir(pgdata):
        common.log("postgres", f'initdb: error: directory "{pgdata}" exists but is not empty')
        raise SystemExit(1)
    password = os.environ.get("POSTGRES_PASSWORD")
    trust = os.environ.get("POSTGRES_HOST_AUTH_METHOD") == "trust"
    if not password and not trust:
        common.log("postgres", "Error: Database is uninitialized and superuser password is not specified.")
        raise SystemExit(1)
    user = os.environ.get("POSTGRES_USER") or "postgres"
    cluster = {"user": user, "password": None if trust else password, "database": os.environ.get("POSTGRES_DB") or user}
    local = listen(UnixServer, f"{SOCKET_DIR}/.s.PGSQL.{port}", cluster)
    time.sleep(float(os.environ.get("STANDIN_INIT_SECONDS") or 1.5))
    with open(os.path.join(pgdata, MARKER), "w", encoding="utf-8") as f:
        json.dump({**cluster, "initialised_at": time.time()}, f)
    with open(os.path.join(pgdata, "PG_VERSION"), "w", encoding="utf-8") as f:
        f.write("16\n")
    local.shutdown()
    local.server_close()
    os.unlink(f"{SOCKET_DIR}/.s.PGSQL.{port}")
    common.log("postgres", "init done; restarting to listen on TCP")
    return cluster


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] != "postgres" and not args[0].startswith("-"):
        os.execvp(args[0], args)  # like docker-entrypoint.sh: `docker run postgres bash` runs bash
    pgdata = os.environ.get("PGDATA", "/var/lib/postgresql/data")
    port = int(os.environ.get("PGPORT") or 5432)
    common.exit_on_signals()
    become_postgres(pgdata)
    os.makedirs(pgdata, exist_ok=True)
    if os.path.exists(os.path.join(pgdata, "PG_VERSION")):
        with open(os.path.join(pgdata, MARKER), encoding="utf-8") as f:
            cluster = json.load(f)
        common.log("postgres", "PostgreSQL Database directory appears to contain a database; Skipping initialization")
    else:
        cluster = initialise(pgdata, port)
    fail = common.start_knobs("postgres")
    listen(UnixServer, f"{SOCKET_DIR}/.s.PGSQL.{port}", cluster)
    if fail != "never-healthy":
        listen(TcpServer, ("0.0.0.0", port), cluster)
        common.log("postgres", f"listening on 0.0.0.0:{port}: database system is ready to accept connections")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
