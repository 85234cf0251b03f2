"""Files shipped with the package: templates and the embedded default profile."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def template_text(name: str) -> str:
    return (resources.files("albert_deploy") / "templates" / name).read_text(encoding="utf-8")


def default_profile_text() -> str:
    return (resources.files("albert_deploy") / "profiles" / "default.yaml").read_text(encoding="utf-8")
