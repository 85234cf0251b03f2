"""Albert API releases albert-deploy can render a config for: one module per release line.

Each module exposes ``RELEASE`` (facts, as data), ``IMAGES`` (its databases' images),
``api_service(image, environment)``, ``config_context(endpoints, vector_store)`` (the config as
plain data, before templating) and ``check_config(data)`` (the release's own rules, applied to the
rendered file loaded back).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Release:
    version: str
    image: str
    template: str  # file under templates/
    vector_stores: tuple[str, ...]
    requires_text_generation: bool
    uses_postgres: bool
    config_mount: str  # where the container reads its config
    # The API substitutes ${VAR} in its config itself (0.1+); older ones get a wrapper command.
    substitutes_env: bool
    # 0.1+ serve each model under its profile name behind the master key, so `check` can go through
    # the API; 0.0.x name models by what servers report and have no master key.
    checkable_through_api: bool


from . import r0_0_3, r0_2_0  # noqa: E402  (the modules import Release from here)

MODULES = {m.RELEASE.version: m for m in (r0_0_3, r0_2_0)}
RELEASES: dict[str, Release] = {version: m.RELEASE for version, m in MODULES.items()}
