"""The profile's `api.public:` section: the TLS front door that publishes the API (and the playground).

Two certificate sources: the operator's certificate and key (``cert_file`` + ``key_file``, host
paths), or automatic certificates for ``domain`` (the proxy asks an ACME CA, so the domain must
resolve to this host and ports 80 and 443 must be reachable from the internet).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from pydantic import Field, field_validator, model_validator

from albert_deploy.profile.bounds import Ipv4Address, Port
from albert_deploy.profile.strict import Strict, _key
from albert_deploy.sizes import Size

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
# Albert API 0.2.0 caps files and documents at 20 MB (app/utils/exceptions.py:111) but its audio
# transcription endpoint has no cap (app/endpoints/audio.py:23-32): an hour of 16 kHz mono WAV is
# about 115 MB, of MP3 far less. 100 MB lets long recordings through and stops abuse.
DEFAULT_MAX_REQUEST = Size(100 * 10**6)
MAX_REQUEST_LIMIT = Size(10 * 10**9)
PLAYGROUND_PORT = 8501  # the playground's host port without a front door (its container port, startup_ui.sh:22)


class Public(Strict):
    """Publish the API over HTTPS through a reverse proxy (Caddy); the API itself binds only inside the stack."""

    domain: str | None = Field(
        None,
        description="Name clients use, e.g. albert.example.org. Alone: automatic certificates (ACME; the name "
        "must resolve here and ports 80/443 be reachable). With cert_file/key_file: the name they cover.",
    )
    cert_file: str | None = Field(None, description="Absolute host path of the operator's certificate (PEM, chain).")
    key_file: str | None = Field(None, description="Absolute host path of its private key (PEM), readable by root.")
    bind: Ipv4Address = Field("0.0.0.0", description="Host address the front door listens on.")
    https_port: Port = Field(443, description="Host port for HTTPS.")
    http_port: Port | None = Field(
        80, description="Host port that redirects to HTTPS (and answers ACME challenges); null: none."
    )
    max_request_size: Size = Field(
        DEFAULT_MAX_REQUEST,
        json_schema_extra={"minimum": 1},
        description="Largest request body, e.g. 100MB (audio uploads); larger ones get 413.",
    )

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is not None and not _DOMAIN.match(value):
            raise ValueError(f"'{value}' is not a DNS name: write it like albert.example.org (lowercase, no scheme)")
        return value

    @field_validator("cert_file", "key_file")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not PurePosixPath(value).is_absolute() or not value.isprintable() or "\\" in value or "//" in value:
            raise ValueError(f"'{value}' is not an absolute path: give the file's full path on the Docker host")
        return value

    @field_validator("max_request_size")
    @classmethod
    def _size(cls, value: Size) -> Size:
        if not 1 <= value <= MAX_REQUEST_LIMIT:
            raise ValueError(f"give a size between 1B and {MAX_REQUEST_LIMIT.human()}, e.g. 100MB")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Public:
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            raise _key(missing, "give both cert_file and key_file (the certificate and its key), or neither")
        if self.cert_file is None and self.domain is None:
            raise ValueError(
                "say how the front door gets its certificate: `domain` for automatic certificates, or "
                "`cert_file` and `key_file` for your own"
            )
        if self.cert_file is not None and self.cert_file == self.key_file:
            raise _key("key_file", "the key must be its own file, not the certificate's")
        if self.automatic and self.https_port != 443 and self.http_port != 80:
            raise _key(
                "https_port",
                "automatic certificates need port 443 (TLS-ALPN challenge) or http_port 80 (HTTP challenge) on "
                "this host: use one of them, or give cert_file and key_file",
            )
        if self.http_port is not None and self.http_port == self.https_port:
            raise _key("http_port", f"port {self.https_port} is already https_port: choose another, or null")
        return self

    @property
    def automatic(self) -> bool:
        return self.cert_file is None

    def host_ports(self) -> dict[int, str]:
        ports = {self.https_port: "api.public.https_port"}
        if self.http_port is not None:
            ports[self.http_port] = "api.public.http_port"
        return ports


def refuse_direct_publishing(fields_set: set[str], public: Any) -> None:
    """With a front door the API publishes no port of its own: ``api.port`` and ``api.bind`` would mislead."""
    if public is None:
        return
    for key in ("port", "bind"):
        if key in fields_set:
            raise _key(
                key,
                f"with api.public the front door publishes the API and the API binds only inside the stack: "
                f"remove api.{key} (the front door's address is api.public.bind, its ports https_port/http_port)",
            )
