"""Size: the one parser and formatter of byte counts."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from albert_deploy.sizes import Size, gb


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24GB", 24 * 10**9),
        ("80 GiB", 80 * 2**30),
        ("81559MiB", 81559 * 2**20),
        ("16G", 16 * 2**30),
        ("1.5 gb", 1_500_000_000),
        (4096, 4096),
        (2.0, 2),
        ("512", 512),
    ],
)
def test_parses_what_operators_write(text: object, expected: int) -> None:
    size = Size.parse(text)
    assert size == expected
    assert isinstance(size, Size)


@pytest.mark.parametrize("bad", ["24 parsecs", "GB", "", True, -1, "-3GB"])
def test_refuses_what_is_not_a_size(bad: object) -> None:
    with pytest.raises(ValueError, match="size"):
        Size.parse(bad)


def test_formats_itself() -> None:
    assert Size(24 * 10**9).gb() == "24.0 GB" == str(Size(24 * 10**9))
    assert gb(1_250_000_000, 2) == "1.25 GB"
    assert Size(2_500_000_000).human() == "2.50 GB"
    assert Size(12_300_000).human() == "12.3 MB"


def test_is_a_pydantic_field_type() -> None:
    class Model(BaseModel):
        memory: Size
        spare: Size | None = None

    model = Model.model_validate({"memory": "80 GiB"})
    assert isinstance(model.memory, Size) and model.memory == 80 * 2**30
    assert model.model_dump() == {"memory": 80 * 2**30, "spare": None}
    assert Model.model_json_schema()["properties"]["memory"]["type"] == "integer"
    with pytest.raises(ValidationError, match="not a size"):
        Model.model_validate({"memory": "lots"})


@pytest.mark.parametrize(
    ("bind", "host"),
    [("0.0.0.0", "127.0.0.1"), ("::", "127.0.0.1"), ("[::]", "127.0.0.1"), ("", "127.0.0.1"),
     ("127.0.0.1", "127.0.0.1"), ("10.0.0.5", "10.0.0.5"), ("::1", "[::1]"), ("[fd00::2]", "[fd00::2]")],
)  # fmt: skip
def test_a_bind_to_every_interface_is_reached_through_loopback(bind: str, host: str) -> None:
    from albert_deploy.plan.spec import reachable_host

    assert reachable_host(bind) == host


def test_formats_for_kubernetes_and_docker() -> None:
    assert Size(8 * 2**30).quantity() == "8Gi" and Size(8 * 2**30).docker() == "8gb"
    assert Size(1536 * 2**20).quantity() == "1536Mi" and Size(1536 * 2**20).docker() == "1536mb"
    assert Size(3 * 2**10).quantity() == "3Ki" and Size(1000).quantity() == "1000" and Size(1000).docker() == "1000b"
