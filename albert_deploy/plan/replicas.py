"""A model's replicas: N servers behind one nginx balancer that bears the model's name.

Why a balancer, and not N ``clients`` in the API config: Albert API 0.2.0 builds each model's
client list once at start (albert-api@0.2.0:app/helpers/models/routers/_basemodelrouter.py:52) and
picks one client per request with no retry (app/helpers/models/routers/_modelrouter.py:33-45;
app/endpoints/chat.py:66 calls ``get_client`` once); a client whose server is gone answers 500
(app/clients/model/_basemodelclient.py:238-240) until the API restarts, and nothing removes a
client at run time. 0.0.3 takes one URL per model (app/clients/_modelclients.py:173-178). So the
API config lists one client per model, ``http://NAME:PORT``, and that host is this balancer:

- ``proxy_next_upstream error timeout``: a replica that refuses the connection is skipped;
- draining: ``up`` rewrites the balancer's config with the replica to replace marked ``down`` and
  reloads nginx (``DRAIN``), which lets the old workers finish their requests; only once they have
  exited does ``up`` stop that replica. The replica comes back in at the next reload.

The replicas are ``NAME-1`` … ``NAME-N``, each placed like a model of its own (``expand``) and
sharing the model's API key and weights volume."""

from __future__ import annotations

from dataclasses import dataclass

from albert_deploy.catalog import HealthCheck
from albert_deploy.plan.spec import Service
from albert_deploy.profile.model import HostedModel, Profile
from albert_deploy.sizes import Size

# The official nginx image (busybox sh, tr and test inside; nginx >= 1.19.5 for `-e`); a profile
# overrides it with `images: {balancer: ...}`.
BALANCER_IMAGE = "nginx:1.28.0-alpine"
BALANCER_USER = "65534:65534"  # nobody: nginx needs no privilege to listen above 1024 and write /tmp
BALANCER_MEMORY = Size(256 * 2**20)
CONF = "/tmp/nginx.conf"
NGINX = f"nginx -c {CONF} -e stderr"
# The container's command: its config arrives as $0 (the service's command), so that it is part of
# the config hash and needs no bind-mounted file.
START = f'printf "%s" "$0" > {CONF} && exec {NGINX} -g "daemon off;"'
# `up`, through `docker exec`, with the new config on stdin: check it, note the running workers,
# reload, then wait until those workers exited (nginx lets them finish their requests first).
DRAIN = f"""exec 2>&1
set -e
cat > {CONF}.next
if [ "$(cat {CONF}.next)" = "$(cat {CONF})" ]; then rm {CONF}.next; exit 0; fi
nginx -c {CONF}.next -e stderr -t -q
old=""
for f in /proc/[0-9]*/cmdline; do
  c=$(tr "\\0" " " < "$f" 2>/dev/null) || continue
  case "$c" in "nginx: worker process"*) p=${{f#/proc/}}; old="$old ${{p%/cmdline}}";; esac
done
mv {CONF}.next {CONF}
{NGINX} -s reload
n=0
for p in $old; do
  while [ -e /proc/$p ]; do
    n=$((n + 1)); [ $n -lt 1300 ] || {{ echo "nginx worker $p still serves requests"; exit 1; }}
    sleep 0.1
  done
done
"""
SHUTDOWN_TIMEOUT_S = 120  # a request older than this is cut when its worker is retired


@dataclass(frozen=True)
class Balancer:
    service: str  # the model's name: what the API config's URL names
    port: int  # where the balancer and its replicas listen, in their containers
    replicas: tuple[str, ...]  # the replicas' services, in the order `up` replaces them

    def conf(self, down: str | None = None) -> str:
        """The nginx config, with ``down`` (a replica) taken out of rotation."""
        servers = "".join(
            f"    server {r}:{self.port}{' down' if r == down else ' max_fails=1 fail_timeout=2s'};\n"
            for r in self.replicas
        )
        return (
            f"worker_processes 1;\npid /tmp/nginx.pid;\nerror_log stderr warn;\n"
            f"worker_shutdown_timeout {SHUTDOWN_TIMEOUT_S}s;\n"
            "events { worker_connections 4096; }\nhttp {\n  access_log off;\n"
            "  client_body_temp_path /tmp/body;\n  proxy_temp_path /tmp/proxy;\n  fastcgi_temp_path /tmp/fastcgi;\n"
            "  uwsgi_temp_path /tmp/uwsgi;\n  scgi_temp_path /tmp/scgi;\n"
            "  client_max_body_size 0;\n"  # audio uploads and long prompts pass whole
            f"  upstream replicas {{\n{servers}  }}\n"
            f"  server {{\n    listen {self.port};\n    location / {{\n      proxy_pass http://replicas;\n"
            # A refused or failed connection goes to the next replica; the request body is buffered
            # (nginx's default), so that a retried request is sent whole.
            "      proxy_next_upstream error timeout http_502 http_503;\n"
            "      proxy_connect_timeout 5s;\n      proxy_send_timeout 3600s;\n      proxy_read_timeout 3600s;\n"
            "      proxy_http_version 1.1;\n      proxy_buffering off;\n    }\n  }\n}\n"
        )


def replica_names(name: str, replicas: int) -> tuple[str, ...]:
    return tuple(f"{name}-{k}" for k in range(1, replicas + 1))


def expand(profile: Profile) -> Profile:
    """The profile the placement sees: each replicated model as N models of one replica, the first in
    its place (so that error locations keep its index), the others last. None publishes a port (the
    balancer does)."""
    first: list[object] = []
    extra: list[HostedModel] = []
    for entry in profile.models:
        if not isinstance(entry, HostedModel) or entry.replicas < 2:
            first.append(entry)
            continue
        copies = [entry.model_copy(update={"name": n, "replicas": 1, "port": None})
                  for n in replica_names(entry.name or "", entry.replicas)]  # fmt: skip
        first.append(copies[0])
        extra.extend(copies[1:])
    return profile.model_copy(update={"models": [*first, *extra]})


def balancer(model: HostedModel, port: int) -> Balancer:
    return Balancer(model.name or "", port, replica_names(model.name or "", model.replicas))


def balancer_service(model: HostedModel, spec: Balancer, image: str) -> Service:
    return Service(
        name=spec.service,
        role="balancer",
        image=image,
        entrypoint=("/bin/sh", "-c", START),
        command=(spec.conf(),),
        ports=(("127.0.0.1", model.port, spec.port),) if model.port else (),
        # The pid file is written once the config is loaded and the port bound.
        healthcheck=HealthCheck(test=("CMD", "test", "-s", "/tmp/nginx.pid"), start_period_s=10),
        depends_on=spec.replicas,
        user=BALANCER_USER,
        mem_limit=BALANCER_MEMORY,
        model=spec.service,
        container_port=spec.port,
    )
