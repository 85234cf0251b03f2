"""A postgres login as the Albert API makes one at startup (its migrations connect first).

Speaks the startup message and the password methods a postgres:16 server asks for over TCP:
SCRAM-SHA-256 (its default), MD5 and cleartext, so a wrong host, user, password or database fails
here as it fails in the real API. Standard library only (runs inside the stand-in image).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import socket
import struct
from urllib.parse import unquote, urlsplit

OK, CLEARTEXT, MD5, SASL, SASL_CONTINUE, SASL_FINAL = 0, 3, 5, 10, 11, 12


def _read(sock: socket.socket) -> tuple[bytes, bytes]:
    head = _exact(sock, 5)
    kind, size = struct.unpack("!cI", head)
    payload = _exact(sock, size - 4)
    if kind == b"E":
        found = re.search(rb"M([^\0]*)", payload)
        raise OSError(found.group(1).decode(errors="replace") if found else "postgres refused the login")
    return kind, payload


def _exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise OSError("postgres closed the connection")
        data += chunk
    return data


def _send(sock: socket.socket, body: bytes) -> None:
    sock.sendall(b"p" + struct.pack("!I", len(body) + 4) + body)


def _scram(sock: socket.socket, password: str) -> None:
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n=,r={nonce}"
    first = f"n,,{first_bare}".encode()
    _send(sock, b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first)
    _, payload = _read(sock)
    server_first = payload[4:].decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    final_bare = f"c=biws,r={fields['r']}"
    message = f"{first_bare},{server_first},{final_bare}".encode()
    signature = hmac.digest(hashlib.sha256(client_key).digest(), message, "sha256")
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True))).decode()
    _send(sock, f"{final_bare},p={proof}".encode())


def _authenticate(sock: socket.socket, user: str, database: str, password: str) -> None:
    """Startup message and the password exchange; returns once the server is ready for a query."""
    body = struct.pack("!I", 196608) + f"user\0{user}\0database\0{database}\0\0".encode()
    sock.sendall(struct.pack("!I", len(body) + 4) + body)
    while True:
        kind, payload = _read(sock)
        if kind == b"Z":
            return
        code = struct.unpack("!I", payload[:4])[0] if kind == b"R" else None
        if code == CLEARTEXT:
            _send(sock, password.encode() + b"\0")
        elif code == MD5:
            inner = hashlib.md5(password.encode() + user.encode()).hexdigest().encode()
            _send(sock, b"md5" + hashlib.md5(inner + payload[4:8]).hexdigest().encode() + b"\0")
        elif code == SASL:
            _scram(sock, password)
        elif kind == b"R" and code not in (OK, SASL_FINAL):
            raise OSError(f"unexpected postgres message {kind!r} {code}")


def _connect(url: str, timeout: float) -> socket.socket:
    parts = urlsplit(url)
    user = unquote(parts.username or "")
    database = parts.path.lstrip("/") or user
    sock = socket.create_connection((parts.hostname or "localhost", parts.port or 5432), timeout=timeout)
    try:
        _authenticate(sock, user, database, unquote(parts.password or ""))
    except BaseException:
        sock.close()
        raise
    return sock


def login(url: str, timeout: float) -> None:
    """Raises OSError unless the URL's user, password and database log in."""
    _connect(url, timeout).close()


def query(url: str, sql: str, timeout: float = 10) -> list[list[str | None]]:
    """Rows of one simple query (text format), after the same login; raises OSError on an error."""
    with _connect(url, timeout) as sock:
        text = sql.encode() + b"\0"
        sock.sendall(b"Q" + struct.pack("!I", len(text) + 4) + text)
        rows: list[list[str | None]] = []
        while True:
            kind, payload = _read(sock)
            if kind == b"Z":
                return rows
            if kind == b"D":
                count, at, row = struct.unpack("!H", payload[:2])[0], 2, []
                for _ in range(count):
                    size = struct.unpack("!i", payload[at : at + 4])[0]
                    at += 4
                    row.append(None if size < 0 else payload[at : at + size].decode())
                    at += max(size, 0)
                rows.append(row)
