"""The base of every profile model, and errors that know which key they belong to."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
