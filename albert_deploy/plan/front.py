"""The TLS front door (`api.public`), typed: its routes, where its certificate comes from, its limits.

The proxy is Caddy (README, "A TLS front door"): automatic HTTPS when given a domain, streamed
responses passed through unbuffered (``flush_interval -1``), and one JSON config that
``render/caddy.py`` writes from this plan (JSON, so no value can change its structure).
The official image runs as root with ``cap_net_bind_service`` on its binary, ships curl and keeps
its state under XDG_DATA_HOME=/data (caddyserver/caddy-docker 2.11/alpine/Dockerfile:3-7, 38, 43-44).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from albert_deploy.catalog import HttpGet, curl_get
from albert_deploy.errors import ProfileError
from albert_deploy.plan.spec import Mount, Service, reachable_host
from albert_deploy.profile.front import PLAYGROUND_PORT
from albert_deploy.profile.model import Profile
from albert_deploy.sizes import Size

IMAGE = "caddy:2.11.2-alpine"
CONFIG = "/etc/caddy/caddy.json"
CONFIG_FILE = "caddy.json"  # in the render output, beside compose.yml
CERT_MOUNT = "/etc/caddy/tls/cert.pem"
KEY_MOUNT = "/etc/caddy/tls/key.pem"
DATA_VOLUME = "front-data"  # automatic certificates and their ACME account (kept across restarts)
HTTPS_PORT, HTTP_PORT = 443, 80  # inside the container
HEALTH_PORT, HEALTH_PATH = 8081, "/healthz"  # the proxy's own health, inside the container only
PLAYGROUND_PATH = "/playground"  # the playground behind the front door: same name, same certificate
# Streamed completions of long answers: a read may wait minutes for the next token of a slow model.
READ_TIMEOUT_S = 3600
MEMORY = Size(256 * 2**20)


@dataclass(frozen=True)
class Route:
    name: str  # the service it proxies to
    upstream: str  # host:port inside the stack
    path_prefix: str | None  # None: every other path


@dataclass(frozen=True)
class CertSource:
    automatic: bool  # ACME for the domain; else the operator's files
    cert_file: str | None = None  # host paths
    key_file: str | None = None


@dataclass(frozen=True)
class Front:
    domain: str | None
    cert: CertSource
    bind: str
    https_port: int  # host ports
    http_port: int | None
    max_request_bytes: int
    routes: tuple[Route, ...]  # most specific first
    read_timeout_s: int = READ_TIMEOUT_S

    @property
    def api_url(self) -> str:
        host = self.domain or reachable_host(self.bind)
        return f"https://{host}" + ("" if self.https_port == 443 else f":{self.https_port}")

    @property
    def playground_url(self) -> str | None:
        route = next((r for r in self.routes if r.name == "playground"), None)
        return self.api_url + (route.path_prefix or "/") + "/" if route else None


def front(
    domain: str | None,
    cert: CertSource,
    bind: str,
    ports: tuple[int, int | None],
    max_request_bytes: int,
    api_port: int,
    playground_port: int | None,
) -> Front:
    routes = [Route("api", f"api:{api_port}", None)]
    if playground_port is not None:
        routes.insert(0, Route("playground", f"playground:{playground_port}", PLAYGROUND_PATH))
    return Front(domain, cert, bind, ports[0], ports[1], max_request_bytes, tuple(routes))


def service(plan_front: Front, image: str) -> Service:
    ports = [(plan_front.bind, plan_front.https_port, HTTPS_PORT)]
    if plan_front.http_port is not None:
        ports.append((plan_front.bind, plan_front.http_port, HTTP_PORT))
    mounts = [Mount(f"./{CONFIG_FILE}", CONFIG, read_only=True), Mount(DATA_VOLUME, "/data")]
    if not plan_front.cert.automatic:
        mounts += [
            Mount(plan_front.cert.cert_file or "", CERT_MOUNT, read_only=True),
            Mount(plan_front.cert.key_file or "", KEY_MOUNT, read_only=True),
        ]
    return Service(
        name="front",
        role="front",
        image=image,
        command=("caddy", "run", "--config", CONFIG),
        environment={"XDG_CONFIG_HOME": "/config", "XDG_DATA_HOME": "/data"},
        ports=tuple(ports),
        mounts=tuple(mounts),
        cap_add=("NET_BIND_SERVICE",),
        mem_limit=MEMORY,
        healthcheck=curl_get(HttpGet(HEALTH_PORT, HEALTH_PATH), start_period_s=10),
        depends_on=tuple(r.name for r in plan_front.routes),
        container_port=HTTPS_PORT,
    )


@dataclass(frozen=True)
class FrontDoor:
    """What `api.public` and `playground` add to a plan."""

    front: Front | None
    services: tuple[Service, ...]  # the playground, then the front door
    config: dict[str, Any]  # what the API config adds for the playground (0.2.0)
    api_bind: str  # who can reach the API: the front door's address, or api.bind


def front_door(profile: Profile, source: str, api_port: int) -> FrontDoor:
    from albert_deploy.plan.releases import playground

    release = profile.api.release
    public = profile.api.public
    if profile.playground and release not in playground.RELEASES:
        raise ProfileError(f"{source}: playground: release {release} ships no playground UI: remove `playground`")
    services: list[Service] = []
    if profile.playground:
        image = profile.images.get("playground", playground.RELEASES[release].image)
        max_mb = max(1, public.max_request_size // 10**6) if public else None
        ui = playground.service(release, image, api_port, PLAYGROUND_PATH if public else None, max_mb)
        if not public:
            ui = replace(ui, ports=((profile.api.bind, PLAYGROUND_PORT, playground.PORT),))
        services.append(ui)
    config = playground.config_context(release, api_port) if profile.playground else {}
    if public is None:
        return FrontDoor(None, tuple(services), config, profile.api.bind)
    cert = CertSource(public.automatic, public.cert_file, public.key_file)
    plan_front = front(public.domain, cert, public.bind, (public.https_port, public.http_port),
                       int(public.max_request_size), api_port, playground.PORT if profile.playground else None)  # fmt: skip
    services.append(service(plan_front, profile.images.get("front", IMAGE)))
    return FrontDoor(plan_front, tuple(services), config, public.bind)
