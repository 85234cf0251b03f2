"""The apply stage behind ``up``, ``diff``, ``down``, ``status``, ``logs`` and ``check``.

Render (into the output directory, or in memory for ``diff``/``status``), resolve the typed plan
with the rendered .env (``desired``: no compose.yml is parsed back), and hand the result to
``runner`` (the Docker SDK side, imported only here and only when needed, so that ``render`` stays fast).

Decisions:

- Config hash. ``com.docker.compose.config-hash`` holds sha256 over the canonical JSON of the
  interpolated service entry (secrets included, so a changed .env value recreates what uses it)
  plus the content of every bind-mounted file: a changed config.yml recreates the API, which reads
  it once at start. ``io.albert-deploy.parts`` keeps an 8-hex digest per key and per file, so that
  ``diff`` can say *why* ("changed: command, config.yml") without storing any value.
  ``up`` also recreates a container whose image id differs from the local image's (as compose does).
- ``--no-gpus`` is part of the hash: it drops the device requests and marks the entry
  (``x-no-gpus``), so a container started without its GPUs is recreated by the next plain ``up``
  instead of being kept forever; services without GPUs keep their hash and are not touched.
  ``status --no-gpus`` compares against that variant.
- Docker Compose interop. Names and labels are compose's own (project, service, oneoff,
  container-number, config-hash, depends_on, working_dir, config_files), so ``docker compose
  ps/logs/down`` on the rendered file see our containers. Compose's own config hash is computed
  differently; containers without ``io.albert-deploy.version`` were started by compose: ``status``
  compares them field by field (image, command, environment, ports, health check, GPUs; bind-mounted
  file contents cannot be verified and it says so), and ``up`` recreates them once, saying why,
  exactly as compose recreates ours (volumes, hence data, are kept).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from albert_deploy.converge import desired, fastpath
from albert_deploy.errors import DeployError
from albert_deploy.plan.build import Plan
from albert_deploy.plan.spec import Service, gpus_text, reachable_host
from albert_deploy.render import envfile
from albert_deploy.render.files import ENV_FILE, existing_env, render_plan, write_rendered


@dataclass(frozen=True)
class Applied:
    plan: Plan
    project: desired.Project
    env: dict[str, str]  # .env values: used, never printed
    had_env: bool = True  # False: no .env yet, so the secrets above were just generated


def prepare(plan: Plan, out_dir: Path, write: bool, no_gpus: bool = False) -> Applied:
    """Render ``plan`` and resolve it with the rendered .env. ``write=False`` touches no file.

    Either way the rendered text is what gets used: once written, the files on disk hold exactly it."""
    existing = existing_env(out_dir)
    rendered = render_plan(plan, existing)
    if write:
        write_rendered(rendered, out_dir)
    env = envfile.parse_env(rendered.files[ENV_FILE], str(out_dir / ENV_FILE))
    files = {name: text.encode() for name, text in rendered.files.items()}
    project = desired.project(plan, out_dir, env, files, no_gpus=no_gpus)
    return Applied(plan, project, env, existing is not None)


# --- up / diff ----------------------------------------------------------------------------------


def diff(applied: Applied) -> dict[str, Any]:
    from albert_deploy.converge import engine, runner

    client = engine.connect()
    actions = runner.actions(client, applied.project, applied.plan.locked_ids)
    return {"project": applied.project.name, "actions": [a.as_dict() for a in actions], "changes": _changes(actions)}


def up(
    applied: Applied,
    timeouts: tuple[str, ...] = (),
    detach: bool = False,
    reporter: Any = None,
    parallel_pulls: int = 4,
    remember: fastpath.Inputs | None = None,
) -> dict[str, Any]:
    """Converge; with ``remember``, record the outcome for the next ``up``'s no-change check."""
    from albert_deploy.converge import engine, reconcile, runner, stackops

    limits = reconcile.parse_timeouts(timeouts)
    unknown = sorted(set(limits) - set(applied.project.services) - {"*"})
    if unknown:
        raise DeployError(
            f"--timeout {unknown[0]}=...: no such service (services: {', '.join(applied.project.services)})"
        )
    t0 = time.monotonic()
    client = engine.connect()
    result = runner.up(
        client,
        applied.project,
        timeouts=limits,
        detach=detach,
        reporter=reporter,
        secrets=envfile.secret_values(applied.env),
        locked_ids=applied.plan.locked_ids,
        balancers=applied.plan.balancers,
        reload=stackops.balancer_reloader(client, applied.project.name),
        parallel_pulls=parallel_pulls,
    )
    no_gpus = any(s.no_gpus for s in applied.project.services.values())
    summary = {
        "project": applied.project.name,
        "actions": [a.as_dict() for a in result.actions],
        "changes": _changes(result.actions),
        "services": [_summary_row(s, applied, result.services.get(s.name, {}), no_gpus) for s in applied.plan.services],
        "api_url": api_url(applied.plan),
        "detached": detach,
        "seconds": round(time.monotonic() - t0, 2),
    }
    if remember is not None and fastpath.socket_path() is not None:
        _remember(client, applied, remember, summary, result.verified)
    return summary


def _remember(
    client: Any, applied: Applied, inputs: fastpath.Inputs, summary: dict[str, Any], verified: frozenset[str]
) -> None:
    from albert_deploy.converge.engine import list_containers
    from albert_deploy.profile.lock import lock_path

    project, plan = applied.project, applied.plan
    rows = [
        {"Id": c.id, "service": c.service, "config_hash": c.config_hash, "image": project.services[c.service].image,
         "checked": project.services[c.service].healthcheck is not None, "verified": c.id in verified}
        for c in list_containers(client, project.name) if c.service in project.services
    ]  # fmt: skip
    env_text = (inputs.out_dir / ENV_FILE).read_text(encoding="utf-8")
    names = fastpath.env_names([*plan.secrets, *plan.operator_env], env_text)
    fastpath.write(inputs, str(lock_path(plan.source).resolve()), names, rows, summary)


def _changes(actions: list[Any]) -> int:
    return sum(1 for a in actions if a.kind != "nothing")


def _summary_row(service: Service, applied: Applied, state: dict[str, Any], no_gpus: bool) -> dict[str, Any]:
    gpus = gpus_text(service.gpu)
    if no_gpus and service.gpu is not None:
        gpus = f"none (--no-gpus; profile: {gpus})"
    return {
        "service": service.name,
        "role": service.role,
        "image": service.image,
        "gpus": gpus,
        "url": service_url(service, applied.plan),
        "action": state.get("action", ""),
        "state": state.get("state", ""),
        "health": state.get("health", ""),
    }


def api_url(plan: Plan) -> str:
    return plan.api_url


def service_url(service: Service, plan: Plan) -> str:
    if service.ports:
        host, port, _ = service.ports[0]
        return f"http://{reachable_host(host)}:{port}"
    if service.role == "model" and service.name != service.model:  # a replica, behind its balancer
        return f"http://{service.name}:{service.container_port} (inside the stack)"
    endpoint = next((e for e in plan.endpoints if e.hosted and e.name == service.model), None)
    return f"{endpoint.url} (inside the stack)" if endpoint else "-"


# --- down / status / logs -----------------------------------------------------------------------


def down(project: str, volumes: bool) -> dict[str, Any]:
    from albert_deploy.converge import engine, stackops

    return stackops.down(engine.connect(), project, volumes)


def status(project: str, applied: Applied | None, locked: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """``locked``: service -> its image's lock entry; a running container on another image is reported."""
    from albert_deploy.converge import engine, gpumemory, stackops

    # Without a .env the secrets would be new ones: every service would look changed.
    wanted = applied.project if applied and applied.had_env else None
    locked_ids = applied.plan.locked_ids if applied else {}
    rows = stackops.status(engine.connect(), project, wanted, locked or {}, locked_ids)
    return {
        "project": project,
        "services": rows,
        "lock_mismatch": any(r["lock"].startswith("differs") for r in rows),
        "drift": any(r["drift"] not in ("none", "unknown") and not r["drift"].startswith("none ") for r in rows),
        "api_url": api_url(applied.plan) if applied else None,
        # None without a profile; False: the API lets anyone in (release 0.0.3).
        "api_authenticated": applied.plan.api_access.authenticated if applied else None,
        "api_warning": applied.plan.api_access.warning() if applied else None,
        # Each model's measured GPU memory beside its budget (Prometheus, dcgm-exporter), or why not.
        "gpu_memory": gpumemory.report(applied.plan) if applied and rows else None,
    }


def logs(project: str, service: str, follow: bool, tail: int | None) -> Iterator[bytes]:
    from albert_deploy.converge import engine, stackops

    return stackops.logs(engine.connect(), project, service, follow, tail)


# --- check --------------------------------------------------------------------------------------


def check(applied: Applied, timeout: float = 10.0) -> dict[str, Any]:
    """Every model's contract, on its server and through the API where the release allows it."""
    from albert_deploy.converge import contract as checker

    if not applied.had_env:
        raise DeployError(
            f"{applied.project.working_dir}/{ENV_FILE} does not exist: run `albert-deploy up` first (or give -o)"
        )
    plan, env = applied.plan, {**applied.env, **os.environ}
    hosted: list[dict[str, Any]] = []
    external: list[dict[str, Any]] = []
    via_api: list[dict[str, Any]] = []
    for e in plan.endpoints:
        key = env.get(e.key.name) if e.key else None
        job = {"name": e.name, "type": e.type, "url": e.url, "served_name": e.served_name, "key": key, "via": "server"}
        (hosted if e.hosted else external).append(job)
        if plan.release.checkable_through_api:
            via_api.append(
                {**job, "url": api_url(plan), "served_name": e.name, "key": env.get("MASTER_KEY"), "via": "api"}
            )
    results: list[dict[str, Any]] = []
    if hosted:
        results += _check_inside(applied, hosted, timeout)
    results += checker.run_checks(external, timeout)
    results += checker.run_checks(via_api, timeout)
    secrets = envfile.secret_values(applied.env)
    for result in results:
        result["detail"] = envfile.redact(str(result.get("detail", "")), secrets)
    notes = (
        []
        if via_api
        else [f"release {plan.release.version}: models are not checked through the API (it has no master key)"]
    )
    return {
        "project": plan.project,
        "results": results,
        "ok": all(r["ok"] for r in results),
        "notes": notes,
    }


def _check_inside(applied: Applied, jobs: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    """Model servers publish no port: run check.py in the API container, which reaches them by name."""
    from albert_deploy.converge import contract as checker
    from albert_deploy.converge import engine, stackops

    source = Path(checker.__file__).read_text(encoding="utf-8")
    payload = json.dumps({"jobs": jobs, "timeout": timeout}).encode()
    client = engine.connect()
    code, out = stackops.exec_json(client, applied.project.name, "api", ["python3", "-c", source], payload)
    try:
        results = json.loads(out.decode("utf-8", "replace"))
        if not isinstance(results, list):
            raise ValueError("not a list")
        return results
    except ValueError:
        detail = f"the checker in the api container exited with {code} and no result"
        return [{"name": j["name"], "via": "server", "ok": False, "detail": detail} for j in jobs]
