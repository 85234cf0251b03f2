"""Stand-in for the two functions of sqlalchemy-utils 0.41.2 that albert-deploy's playground command
calls (the real image has the package: albert-api@0.2.0 pyproject.toml:16). Postgres only; the real
ones connect to the server's `postgres` database for these statements too."""

from __future__ import annotations

import sys
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, "/opt/standin/py")
import pg_login


def _admin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres")), parts.path.lstrip("/")


def database_exists(url: str) -> bool:
    admin, name = _admin(url)
    return bool(pg_login.query(admin, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"))


def create_database(url: str) -> None:
    admin, name = _admin(url)
    pg_login.query(admin, f"CREATE DATABASE \"{name}\" ENCODING 'utf8' TEMPLATE template1")
