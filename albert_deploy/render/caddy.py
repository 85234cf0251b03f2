"""plan.front -> caddy.json: the front door's whole configuration, as Caddy's native JSON.

JSON and not a Caddyfile: every value is a JSON string built with ``json.dumps``, so nothing from a
profile can add a directive. The same file loads in Caddy 2.6.2 (Debian 12's package, which the
tests run) and 2.11 (the pinned image); where the two differ it uses what both read:

- ``request_body.max_size`` makes a larger body fail while the proxy reads it; 2.6 answers that
  with 502 and 2.7+ with 413 (caddyserver/caddy#5652), so an error route turns the error into 413.
- ``flush_interval: -1``: every chunk of a streamed completion (server-sent events) goes out at
  once; ``transport.read_timeout``/``write_timeout`` leave an hour for a slow generation.
- an internal server on 127.0.0.1:8081 answers ``/healthz`` for the container's health check.
"""

from __future__ import annotations

import json
from typing import Any

from albert_deploy.errors import RenderError
from albert_deploy.plan.front import (
    CERT_MOUNT,
    CONFIG_FILE,
    HEALTH_PATH,
    HEALTH_PORT,
    HTTP_PORT,
    HTTPS_PORT,
    KEY_MOUNT,
    Front,
    Route,
)

__all__ = ["CONFIG_FILE", "caddy_config", "caddy_json"]

OPERATOR_TAG = "operator"  # the operator's certificate, chosen for every handshake whatever the SNI
TOO_LARGE = "request body too large"  # Go's http.MaxBytesReader error, in both versions


def caddy_config(front: Front) -> dict[str, Any]:
    timeout = f"{front.read_timeout_s}s"
    server: dict[str, Any] = {
        "listen": [f":{HTTPS_PORT}"],
        "routes": [_route(r, front, timeout) for r in front.routes],
        "errors": {"routes": [_too_large()]},
        # The default 5 min idle and no read timeout suit long uploads; headers must come quickly.
        "read_header_timeout": "30s",
    }
    apps: dict[str, Any] = {"http": {"http_port": HTTP_PORT, "https_port": HTTPS_PORT, "servers": {"front": server}}}
    if front.cert.automatic:
        # Caddy manages a certificate for every host its routes match: the domain. (With the
        # operator's certificate every name is served: the certificate says which ones are valid.)
        for route in server["routes"]:
            route["match"] = [{**m, "host": [front.domain]} for m in route.get("match", [{}])]
        server["automatic_https"] = {"disable_redirects": front.http_port is None}
    else:
        server["automatic_https"] = {"disable": True}
        server["tls_connection_policies"] = [{"certificate_selection": {"any_tag": [OPERATOR_TAG]}}]
        apps["tls"] = {"certificates": {"load_files": [
            {"certificate": CERT_MOUNT, "key": KEY_MOUNT, "tags": [OPERATOR_TAG]},
        ]}}  # fmt: skip
        if front.http_port is not None:
            apps["http"]["servers"]["redirect"] = _redirect(front.https_port)
    apps["http"]["servers"]["health"] = {
        "listen": [f"127.0.0.1:{HEALTH_PORT}"],
        "routes": [{"match": [{"path": [HEALTH_PATH]}], "handle": [_respond(200, "ok\n")]}],
        "automatic_https": {"disable": True},
    }
    # No admin endpoint (nothing reloads it through the API) and nothing written outside /data.
    return {"admin": {"disabled": True, "config": {"persist": False}}, "apps": apps}


def caddy_json(front: Front) -> str:
    text = json.dumps(caddy_config(front), indent=2, ensure_ascii=True) + "\n"
    _verify(text, front)
    return text


def _route(route: Route, front: Front, timeout: str) -> dict[str, Any]:
    proxy: dict[str, Any] = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": route.upstream}],
        "flush_interval": -1,
        "transport": {"protocol": "http", "read_timeout": timeout, "write_timeout": timeout},
    }
    handle = [{"handler": "request_body", "max_size": front.max_request_bytes}, proxy]
    entry: dict[str, Any] = {"handle": handle, "terminal": True}
    if route.path_prefix:
        entry["match"] = [{"path": [route.path_prefix, route.path_prefix + "/*"]}]
    return entry


def _too_large() -> dict[str, Any]:
    # 2.7+ sets the status itself; 2.6 reports 502 with Go's message.
    return {
        "match": [{"vars_regexp": {"{http.error.message}": {"pattern": TOO_LARGE}}}],
        "handle": [_respond(413, "request body too large for this server\n")],
    }


def _redirect(https_port: int) -> dict[str, Any]:
    port = "" if https_port == HTTPS_PORT else f":{https_port}"  # the host's port, which clients see
    return {
        "listen": [f":{HTTP_PORT}"],
        "routes": [{"handle": [{
            "handler": "static_response", "status_code": 308,
            "headers": {"Location": [f"https://{{http.request.host}}{port}{{http.request.uri}}"]},
        }]}],
        "automatic_https": {"disable": True},
    }  # fmt: skip


def _respond(status: int, body: str) -> dict[str, Any]:
    return {"handler": "static_response", "status_code": status, "body": body}


def _verify(text: str, front: Front) -> None:
    """Load the file back and compare what matters with the plan."""
    data = json.loads(text)
    server = data["apps"]["http"]["servers"]["front"]
    dials = [
        h["upstreams"][0]["dial"] for r in server["routes"] for h in r["handle"] if h["handler"] == "reverse_proxy"
    ]
    limits = {h["max_size"] for r in server["routes"] for h in r["handle"] if h["handler"] == "request_body"}
    if dials != [r.upstream for r in front.routes] or limits != {front.max_request_bytes}:
        raise RenderError("internal error: caddy.json does not route as planned; please report it")
