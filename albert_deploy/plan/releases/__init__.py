"""Albert API releases albert-deploy can render a config for: one module per release line.

Each module exposes ``RELEASE`` (facts, as data), ``IMAGES`` (its databases' images),
``api_service(image, environment)``, ``config_context(endpoints, vector_store)`` (the config as
plain data, before templating) and ``validate_config(data)`` (the release's own rules, applied to the
rendered file loaded back).
"""

from __future__ import annotations

from albert_deploy.catalog import RELEASES, Release

__all__ = ["MODULES", "RELEASES", "Release"]

from albert_deploy.plan.releases import r0_0_3, r0_2_0

MODULES = {m.RELEASE.version: m for m in (r0_0_3, r0_2_0)}
