"""Sizes in bytes: one type that parses what operators write ("24GB", "80 GiB", "81559MiB", a number)
and formats itself for messages and tables.

It is a pydantic type: a profile field annotated ``Size`` accepts any of those forms and holds a
``Size`` (an ``int`` of bytes); its JSON Schema stays an integer.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic is imported only when a model uses the type: `views` stays light
    from pydantic import GetCoreSchemaHandler
    from pydantic_core import core_schema

_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB|K|M|G|T)?\s*$", re.IGNORECASE)
# Bare K, M, G, T are binary, as nvidia-smi and Docker read them.
_UNITS = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
}  # fmt: skip
GB = 10**9
MB = 10**6
# Docker and Kubernetes hold byte counts in a signed 64-bit integer.
MAX_BYTES = 2**63 - 1


class Size(int):
    """A number of bytes."""

    @classmethod
    def parse(cls, value: Any) -> Size:
        """``"24GB"``, ``"81559MiB"``, ``"16G"``, ``"80 GiB"`` or a number of bytes."""
        if isinstance(value, bool):
            raise ValueError("give a size such as 24GB or 81559MiB")
        if isinstance(value, (int, float)):
            if value != value:  # YAML's .nan
                raise ValueError(f"{value} is not a size: write it as 24GB, 24GiB or 81559MiB")
            if value < 0:
                raise ValueError(f"{value} is negative: give a size such as 24GB, or 0")
            return cls._bounded(value, value)
        match = _PATTERN.match(str(value))
        if not match:
            raise ValueError(f"'{value}' is not a size: write it as 24GB, 24GiB or 81559MiB")
        number, unit = match.groups()
        return cls._bounded(float(number) * _UNITS[(unit or "b").lower()], value)

    @classmethod
    def _bounded(cls, count: float, written: Any) -> Size:
        # Compared before int(): YAML's .inf, and digits past a float's range, are infinite.
        if count > MAX_BYTES:
            raise ValueError(f"{written} is more bytes than Docker and Kubernetes can hold: give a real size")
        return cls(int(count))

    def gb(self, digits: int = 1) -> str:
        """Decimal gigabytes, as the placement's messages and tables show them: ``24.0 GB``."""
        return f"{self / GB:.{digits}f} GB"

    def human(self) -> str:
        """GB from a gigabyte up, MB below: ``1.25 GB``, ``12.3 MB``."""
        return self.gb(2) if self >= GB else f"{self / MB:.1f} MB"

    def quantity(self) -> str:
        """A Kubernetes quantity, in the largest binary unit that holds it exactly: ``8Gi``."""
        for unit, factor in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
            if self and self % factor == 0:
                return f"{self // factor}{unit}"
        return str(int(self))

    def docker(self) -> str:
        """As Docker and compose write it (their ``g``, ``m``, ``k`` are binary): ``8gb``."""
        for unit, factor in (("gb", 2**30), ("mb", 2**20), ("kb", 2**10)):
            if self and self % factor == 0:
                return f"{self // factor}{unit}"
        return f"{int(self)}b"

    def __str__(self) -> str:
        return self.gb()

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        from pydantic_core import core_schema

        # Parse, check as an int (so that Field(ge=…) applies), then hold it as a Size.
        checked = core_schema.no_info_before_validator_function(cls.parse, core_schema.int_schema())
        return core_schema.no_info_after_validator_function(
            cls, checked, serialization=core_schema.plain_serializer_function_ser_schema(int)
        )


def gb(n: int, digits: int = 1) -> str:
    """A plain byte count as decimal gigabytes: ``24.0 GB``."""
    return Size(n).gb(digits)
