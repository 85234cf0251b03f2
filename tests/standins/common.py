"""Helpers shared by the test stand-in servers (stdlib only, Python 3.11).

The real images (vLLM, TEI, whisper-openai-api, the Albert API, redis-stack, postgres, qdrant)
cannot be pulled on test machines, so tests run stand-ins that look the same *from the outside*:
same flags, ports, users, paths, auth rules, health routes and answer shapes. Nothing here runs a
model or stores real data. These files are copied into the images by ``build.py`` and also run as
plain local processes by unit tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# STANDIN_FAIL values: how a stand-in misbehaves on purpose.
FAIL_MODES = ("", "never-healthy", "exit", "wrong-shape")
IMPORTED_AT = time.time()  # the server program's start, give or take its interpreter's (well under 1 s)


def log(name: str, message: str) -> None:
    print(f"[{name} stand-in] {message}", file=sys.stderr, flush=True)


def exit_on_signals() -> None:
    """PID 1 in a container ignores SIGTERM unless it handles it: without this `docker stop` waits 10 s."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def _stat() -> list[str]:
    """/proc/self/stat's fields from the third on ([0] is field 3, the state)."""
    with open("/proc/self/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def process_age() -> float:
    """Seconds since this process started (its first exec: /proc/self/stat field 22, in clock ticks
    since boot), so that a wrapper that execs the server and the interpreter's own start count."""
    with open("/proc/uptime") as uptime:
        return float(uptime.read().split()[0]) - int(_stat()[19]) / os.sysconf("SC_CLK_TCK")


def ran_children() -> bool:
    """Whether this process reaped children before it became the server (fields 16-17, cutime and
    cstime): a wrapper's loop (curl, sleep) did; an interpreter starting, however slowly, does not."""
    fields = _stat()
    return int(fields[13]) + int(fields[14]) > 0


def load_age() -> float:
    """Seconds this server has been loading: since its process started, so that the interpreter's
    own start counts, as a real server's does; but when a wrapper waited in that process before it
    exec'd the server (the GPU start-order wait, albert_deploy/plan/startup.py), only since the
    server program began: a container waiting for its turn is not loading."""
    return time.time() - IMPORTED_AT if ran_children() else process_age()


def start_knobs(name: str) -> str:
    """Apply STANDIN_START_DELAY (or STANDIN_LOAD_SECONDS) and STANDIN_FAIL=exit; return the fail
    mode for the server to honour.

    Real servers load weights (minutes) before they bind; the delay lets tests reproduce that.
    STANDIN_LOAD_SECONDS is a load time counted from the server's start (``load_age``), as a real
    server's is (its interpreter and imports are part of it): a slow start on a busy host is not
    added to it.
    """
    fail = os.environ.get("STANDIN_FAIL", "")
    if fail not in FAIL_MODES:
        log(name, f"unknown STANDIN_FAIL={fail!r} (known: {', '.join(m for m in FAIL_MODES if m)})")
        raise SystemExit(2)
    delay = float(os.environ.get("STANDIN_START_DELAY") or 0)
    if os.environ.get("STANDIN_LOAD_SECONDS"):
        delay = float(os.environ["STANDIN_LOAD_SECONDS"]) - load_age()
    if delay > 0:
        log(name, f"simulating a {delay:g} s start (STANDIN_START_DELAY)")
        time.sleep(delay)
    if fail == "exit":
        log(name, "exiting with status 1 (STANDIN_FAIL=exit)")
        raise SystemExit(1)
    return fail


class Handler(BaseHTTPRequestHandler):
    """Routes every method to ``route(method, path)``; JSON helpers around it."""

    standin_name = "http"
    server_version = "standin"

    def log_message(self, format: str, *args: object) -> None:
        log(self.standin_name, format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        self.query = parts.query
        with contextlib.suppress(BrokenPipeError):  # the client hung up: nothing to answer
            self.route(method, parts.path)

    def route(self, method: str, path: str) -> None:
        self.send_json(404, {"detail": "Not Found"})

    # --- request helpers
    def body(self) -> bytes:
        if not hasattr(self, "_body"):
            length = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(length) if length else b""
        return self._body

    def json_body(self) -> object:
        """The JSON body, or None when it is missing or invalid."""
        try:
            return json.loads(self.body() or b"null")
        except ValueError:
            return None

    def bearer(self) -> str | None:
        value = self.headers.get("Authorization") or ""
        return value[7:] if value.startswith("Bearer ") else None

    # --- response helpers
    def send_raw(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_json(self, status: int, obj: object) -> None:
        self.send_raw(status, json.dumps(obj).encode(), "application/json")

    def send_text(self, status: int, text: str) -> None:
        self.send_raw(status, text.encode(), "text/plain; charset=utf-8")


def serve(handler: type[Handler], host: str, port: int, name: str, state: object = None) -> None:
    """Serve until SIGTERM/SIGINT. ``state`` is reachable from handlers as ``self.server.state``."""
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.state = state  # type: ignore[attr-defined]
    log(name, f"listening on {host}:{port}")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


# --- multipart/form-data, by hand: the stdlib has no parser for it any more (cgi is deprecated).
def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[bytes, str | None, str | None]]:
    """Fields by name: (data, filename, part content type). Raises ValueError when malformed."""
    match = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not content_type.startswith("multipart/form-data") or not match:
        raise ValueError("not multipart/form-data")
    delimiter = b"--" + match.group(1).encode()
    fields: dict[str, tuple[bytes, str | None, str | None]] = {}
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        raise ValueError("no multipart part")
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # closing delimiter
        head, sep, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("multipart part without headers")
        headers = head.decode("latin-1")
        name = re.search(r'[; ]name="([^"]*)"', headers)
        if not name:
            raise ValueError("multipart part without a name")
        filename = re.search(r'filename="([^"]*)"', headers)
        ctype = re.search(r"(?im)^content-type:\s*(\S+)", headers)
        fields[name.group(1)] = (
            data.removesuffix(b"\r\n"),
            filename.group(1) if filename else None,
            ctype.group(1) if ctype else None,
        )
    return fields


def build_multipart(fields: dict[str, tuple[bytes, str | None, str | None]]) -> tuple[bytes, str]:
    """The inverse of parse_multipart: (body, content type header)."""
    boundary = "standin" + secrets.token_hex(12)
    out = bytearray()
    for name, (data, filename, ctype) in fields.items():
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"
