"""One function per CLI command: profile -> plan -> render -> apply, returning plain data.

The CLI only parses options, calls one of these and prints what it returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .plan import Stack, build_stack
from .profile import DEFAULT_PROFILE, Profile, load_profile, profile_json_schema
from .render import ENV_FILE, render_stack, write_rendered


def load(profile_path: str | None) -> tuple[Profile, Stack]:
    profile = load_profile(profile_path)
    return profile, build_stack(profile, profile_path or DEFAULT_PROFILE)


def validate(profile_path: str | None) -> dict[str, Any]:
    _, stack = load(profile_path)
    return _summary(stack)


def render(profile_path: str | None, out_dir: Path, target: str = "compose") -> dict[str, Any]:
    profile, stack = load(profile_path)
    if target == "kubernetes":
        from .k8s.render import render_into

        return {**_summary(stack), "output": str(out_dir.resolve()), **render_into(profile, stack, out_dir)}
    env_path = out_dir / ENV_FILE
    existing = env_path.read_text(encoding="utf-8") if env_path.is_file() else None
    rendered = render_stack(stack, existing)
    change = write_rendered(rendered, out_dir)
    return {**_summary(stack), "output": str(out_dir.resolve()), "files": sorted(rendered.files), "change": change}


def plan_gpus(profile_path: str | None) -> dict[str, Any]:
    from .placement import format_placement, placement_report
    from .plan import place_models

    source = profile_path or DEFAULT_PROFILE
    placement = place_models(load_profile(profile_path), source)
    return {"profile": source, **placement_report(placement), "text": format_placement(placement)}


def schema() -> dict[str, Any]:
    return profile_json_schema()


# --- apply: up, plan, down, status, logs, check (the Docker side is imported lazily) -------------


def up(
    profile_path: str | None,
    out_dir: Path,
    *,
    no_gpus: bool = False,
    timeouts: tuple[str, ...] = (),
    detach: bool = False,
    dry_run: bool = False,
    reporter: Any = None,
) -> dict[str, Any]:
    """Render into ``out_dir``, then converge the stack (``dry_run``: say what would change)."""
    from . import apply

    if dry_run:
        return plan(profile_path, out_dir, no_gpus=no_gpus)
    _, stack = load(profile_path)
    applied = apply.prepare(stack, out_dir, write=True, no_gpus=no_gpus)
    return apply.up(applied, timeouts=timeouts, detach=detach, reporter=reporter)


def plan(profile_path: str | None, out_dir: Path, *, no_gpus: bool = False) -> dict[str, Any]:
    """Per service: create, recreate (why), start or nothing. Writes nothing, changes nothing."""
    from . import apply

    _, stack = load(profile_path)
    return {**apply.plan(apply.prepare(stack, out_dir, write=False, no_gpus=no_gpus)), "dry_run": True}


def _project_name(profile_path: str | None, project: str | None) -> str:
    return project or load(profile_path)[1].project


def down(profile_path: str | None, *, project: str | None = None, volumes: bool = False) -> dict[str, Any]:
    from . import apply

    return apply.down(_project_name(profile_path, project), volumes)


def status(
    profile_path: str | None, out_dir: Path, *, project: str | None = None, no_gpus: bool = False
) -> dict[str, Any]:
    """Containers of the project; drift against what the profile renders now (unless only -p is given)."""
    from . import apply

    if project and profile_path is None:
        return apply.status(project, None)
    _, stack = load(profile_path)
    return apply.status(project or stack.project, apply.prepare(stack, out_dir, write=False, no_gpus=no_gpus))


def logs(
    profile_path: str | None, service: str, *, project: str | None = None, follow: bool = False, tail: int | None = None
) -> Any:
    from . import apply

    return apply.logs(_project_name(profile_path, project), service, follow, tail)


def check(profile_path: str | None, out_dir: Path, *, timeout: float = 10.0) -> dict[str, Any]:
    """The contract test: each model's endpoint, on its server and through the API."""
    from . import apply

    _, stack = load(profile_path)
    return apply.check(apply.prepare(stack, out_dir, write=False), timeout)


def _summary(stack: Stack) -> dict[str, Any]:
    return {
        "profile": stack.source,
        "project": stack.project,
        "release": stack.release.version,
        "services": [
            {
                "service": s.name,
                "role": s.role,
                "image": s.image,
                "gpus": _gpus(s),
            }
            for s in stack.services
        ],
        "models": [
            {"name": e.name, "type": e.type, "served_name": e.served_name, "url": e.url, "hosted": e.hosted}
            for e in stack.endpoints
        ],
        "operator_env": list(stack.operator_env),
    }


def _gpus(service: Any) -> str:
    if service.gpu is None:
        return "-"
    if service.gpu.device_ids:
        return ",".join(service.gpu.device_ids)
    return f"any {service.gpu.count}"
