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


def render(profile_path: str | None, out_dir: Path) -> dict[str, Any]:
    _, stack = load(profile_path)
    env_path = out_dir / ENV_FILE
    existing = env_path.read_text(encoding="utf-8") if env_path.is_file() else None
    rendered = render_stack(stack, existing)
    write_rendered(rendered, out_dir)
    return {**_summary(stack), "output": str(out_dir.resolve()), "files": sorted(rendered.files)}


def schema() -> dict[str, Any]:
    return profile_json_schema()


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
