"""Files shipped with the package: templates and the embedded default profile."""

from __future__ import annotations

from functools import cache
from pathlib import Path

# The package's own directory: it is installed as files (a wheel or an editable install), and reading
# beside __file__ spares `render` importing importlib.resources and zipfile.
PACKAGE = Path(__file__).resolve().parent


def template_path(name: str) -> Path:
    return PACKAGE / "templates" / name


@cache
def template_text(name: str) -> str:
    return template_path(name).read_text(encoding="utf-8")


def default_profile_text() -> str:
    return (PACKAGE / "profiles" / "default.yaml").read_text(encoding="utf-8")
