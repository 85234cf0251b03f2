"""Stand-in for redis/redis-stack-server in tests: enough RESP for AUTH, PING and a few keys.

Like the real image's /entrypoint.sh it reads its options from REDIS_ARGS (``--requirepass X``,
``--port N``; others ignored) and keeps data under /data (here a JSON file, so tests can see that a
volume persisted). Knobs: STANDIN_START_DELAY; STANDIN_FAIL=never-healthy answers every command
with -LOADING (what real redis says while it loads its dataset), exit exits 1.
"""

from __future__ import annotations

import json
import os
import shlex
import socketserver
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

NOAUTH = b"-NOAUTH Authentication required.\r\n"
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"


class Store:
    def __init__(self, password: str | None, data_dir: str, fail: str) -> None:
        self.password = password
        self.fail = fail
        self.path = os.path.join(data_dir, "standin-dump.json")
        self.lock = threading.Lock()
        try:
            with open(self.path, encoding="utf-8") as f:
                self.keys: dict[str, str] = json.load(f)
        except (OSError, ValueError):
            self.keys = {}

    def save(self) -> None:
        try:
            tmp = self.path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.keys, f)
            os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only /data must not break the stand-in: real redis only logs save errors


def bulk(value: str | None) -> bytes:
    if value is None:
        return b"$-1\r\n"
    data = value.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def read_command(rfile) -> list[str] | None:  # type: ignore[no-untyped-def]
    """One command: a RESP array of bulk strings (redis-cli, clients) or an inline line (telnet, bash)."""
    line = rfile.readline()
    if not line:
        return None
    if not line.startswith(b"*"):
        return line.decode(errors="replace").split()
    args = []
    for _ in range(int(line[1:])):
        size = int(rfile.readline()[1:])
        args.append(rfile.read(size + 2)[:-2].decode(errors="replace"))
    return args


class RespHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        store: Store = self.server.store  # type: ignore[attr-defined]
        authed = store.password is None
        while True:
            try:
                args = read_command(self.rfile)
            except (ValueError, OSError):
                return
            if args is None:
                return
            if not args:
                continue
            name = args[0].upper()
            if name == "AUTH":
                reply, authed = self.auth(store, args[1:], authed)
            elif name == "QUIT":
                self.wfile.write(b"+OK\r\n")
                return
            elif name == "HELLO":
                reply, authed = self.hello(store, args[1:], authed)
            elif not authed:
                reply = NOAUTH
            elif store.fail == "never-healthy":
                reply = b"-LOADING Redis is loading the dataset in memory\r\n"
            else:
                reply = self.run(store, name, args[1:])
            self.wfile.write(reply)

    @staticmethod
    def auth(store: Store, args: list[str], authed: bool) -> tuple[bytes, bool]:
        if store.password is None:
            return (
                b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n",
                authed,
            )
        password = args[-1] if args and len(args) <= 2 and (len(args) == 1 or args[0] == "default") else None
        return (b"+OK\r\n", True) if password == store.password else (WRONGPASS, authed)

    def hello(self, store: Store, args: list[str], authed: bool) -> tuple[bytes, bool]:
        # Protocol 2 only: clients that insist on RESP3 get NOPROTO and fall back.
        if args and args[0] not in ("2",):
            return b"-NOPROTO unsupported protocol version\r\n", authed
        if "AUTH" in [a.upper() for a in args]:
            at = [a.upper() for a in args].index("AUTH")
            reply, authed = self.auth(store, args[at + 1 : at + 3], authed)
            if not authed:
                return reply, authed
        if not authed:
            return NOAUTH, authed
        fields = ["server", "redis", "version", "7.2.0", "proto", "2", "mode", "standalone", "role", "master"]
        return b"*%d\r\n" % len(fields) + b"".join(bulk(f) for f in fields), authed

    @staticmethod
    def run(store: Store, name: str, args: list[str]) -> bytes:
        with store.lock:
            if name == "PING":
                return bulk(args[0]) if args else b"+PONG\r\n"
            if name == "ECHO" and len(args) == 1:
                return bulk(args[0])
            if name == "SELECT":
                return b"+OK\r\n"
            if name == "GET" and len(args) == 1:
                return bulk(store.keys.get(args[0]))
            if name == "SET" and len(args) >= 2:
                store.keys[args[0]] = args[1]
                store.save()
                return b"+OK\r\n"
            if name in ("DEL", "EXISTS") and args:
                found = [k for k in args if k in store.keys]
                if name == "DEL":
                    for key in found:
                        del store.keys[key]
                    store.save()
                return b":%d\r\n" % len(found)
            if name == "DBSIZE":
                return b":%d\r\n" % len(store.keys)
            if name == "INFO":
                return bulk("# Server\r\nredis_version:7.2.0\r\nredis_mode:standalone\r\n")
        return b"-ERR unknown command '%s' (this stand-in knows few commands)\r\n" % name.lower().encode()


def main() -> None:
    options = shlex.split(os.environ.get("REDIS_ARGS", "")) + sys.argv[1:]
    password, port = None, 6379
    for i, opt in enumerate(options):
        if opt == "--requirepass" and i + 1 < len(options):
            password = options[i + 1]
        if opt == "--port" and i + 1 < len(options):
            port = int(options[i + 1])
    data_dir = os.environ.get("STANDIN_DATA_DIR", "/data")
    common.exit_on_signals()
    fail = common.start_knobs("redis")
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer((os.environ.get("STANDIN_HOST", "0.0.0.0"), port), RespHandler)
    server.daemon_threads = True
    server.store = Store(password, data_dir, fail)  # type: ignore[attr-defined]
    common.log("redis", f"listening on port {port}; password {'set' if password else 'none'}")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
