"""The base of every profile model, and errors that know which key they belong to."""

from __future__ import annotations

import sys
import types

from pydantic import BaseModel, ConfigDict


def _no_plugin_scan() -> None:
    """albert-deploy uses no Pydantic plugin, yet Pydantic looks for them when it builds its first model:
    it imports importlib.metadata and reads the entry points of every installed package (about a tenth
    of `render`). Its loader module (pydantic/plugin/_loader.py, imported only by _schema_validator.py)
    is registered as already loaded, with no plugins. Without effect if Pydantic loaded it already or
    moves it: then Pydantic scans as before."""
    name = "pydantic.plugin._loader"
    if name not in sys.modules:
        loader = types.ModuleType(name, "albert-deploy: no Pydantic plugins (see albert_deploy/profile/strict.py)")
        loader.get_plugins = tuple  # type: ignore[attr-defined]  # get_plugins() -> (): no plugins
        sys.modules[name] = loader


_no_plugin_scan()


class Strict(BaseModel):
    # defer_build: a model's validator is built when first used, not when its module is imported
    # (`render` never validates the Kubernetes settings on their own, `placement` never uses schema()).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class _LocatedError(ValueError):
    """An error that knows its key: ``loc`` is absolute, or relative to where Pydantic raised it."""

    def __init__(self, loc: str, message: str, relative: bool = False) -> None:
        super().__init__(message)
        self.loc = loc
        self.relative = relative


def _at(index: int, key: str, message: str) -> _LocatedError:
    return _LocatedError(f"models.{index}.{key}", message)


def _key(key: str, message: str) -> _LocatedError:
    return _LocatedError(key, message, relative=True)
