"""The one .env reader and writer (python-dotenv): operator lines and `export` forms survive."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from albert_deploy.errors import RenderError
from albert_deploy.render.envfile import HEADER, _plain_bindings, parse_env, render_env

NAMES = ("MASTER_KEY", "REDIS_PASSWORD")


def test_an_exported_secret_is_kept_in_its_export_form_and_not_written_twice() -> None:
    existing = "# my own note\nexport REDIS_PASSWORD=old\nMASTER_KEY=kept\nEXTRA='x y'\n"
    text = render_env(NAMES, ("HF_TOKEN",), existing)
    assert text.startswith(HEADER + existing)  # the header comes back; every operator line stays
    assert [line for line in text.splitlines() if "REDIS_PASSWORD" in line] == ["export REDIS_PASSWORD=old"]
    values = parse_env(text)
    assert values["REDIS_PASSWORD"] == "old" and values["MASTER_KEY"] == "kept" and values["EXTRA"] == "x y"
    assert text.endswith("# HF_TOKEN=\n")


def test_rendering_twice_changes_nothing_and_hints_once() -> None:
    first = render_env(NAMES, ("HF_TOKEN",), None)
    assert first.startswith(HEADER)
    assert render_env(NAMES, ("HF_TOKEN",), first) == first
    assert first.count("# HF_TOKEN=") == 1


def test_an_empty_or_missing_secret_is_generated() -> None:
    text = render_env(NAMES, (), "export MASTER_KEY=\n")
    values = parse_env(text)
    assert text.startswith(HEADER + "export MASTER_KEY=") and len(values["MASTER_KEY"]) == 40
    assert len(values["REDIS_PASSWORD"]) == 40
    assert text.count("MASTER_KEY") == 1


def test_reader_follows_composes_dialect() -> None:
    text = '# c\nexport A=1\nB=\'lit $A\'\nC="x ${A}"\nD=v # comment\nE=\nF="a\\"b"\nG=pa$\n'
    assert parse_env(text) == {"A": "1", "B": "lit $A", "C": "x 1", "D": "v", "E": "", "F": 'a"b', "G": "pa$"}


@pytest.mark.parametrize("value", ["pa$word", '"pa$$word"', "a\\$b"])
def test_values_compose_reads_differently_are_refused(value: str) -> None:
    with pytest.raises(RenderError, match=r"\.env: the value of K uses .*single quotes"):
        parse_env(f"K={value}\n")


_LINES = st.sampled_from(
    ["", " ", "# note", "#A=1", "A=1", "B=", "KEY_2=a.b:c/d@e+f-g", "C=${A}", "D=${NOPE:-x}", "export E=2",
     "F='q z'", 'G="x"', "H", "I=a b", "J=x#y", "K=x #y", "é=1", "\r", "L=é", "\ufeffM=1", "N=$A"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINES, max_size=8), st.sampled_from(["", "\n", "\n\n"]))
def test_plain_reading_matches_python_dotenv(lines: list[str], end: str) -> None:
    """The reader of plain .env files (no python-dotenv import) returns python-dotenv's bindings, and
    both readers agree with python-dotenv's own dotenv_values, interpolation included."""
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    text = "\n".join(lines) + end
    plain = _plain_bindings(text)
    if plain is not None:
        assert plain == [(b.key, b.value, b.original.string) for b in parse_stream(io.StringIO(text))]
    if "$" not in text.replace("${", ""):  # `$NAME` is refused on purpose
        expected = dotenv_values(stream=io.StringIO(text), interpolate=True)
        assert parse_env(text) == {k: v for k, v in expected.items() if v is not None}


class _CountingEnviron(Mapping[str, str]):
    """os.environ that counts its reads: reading the environment once per line is the quadratic cost."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values, self.reads = values, 0

    def __getitem__(self, key: str) -> str:
        self.reads += 1
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        self.reads += len(self.values)
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def test_a_large_env_file_does_not_read_the_environment_per_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # python-dotenv's own interpolation copies the environment and every earlier value for each line
    # (quadratic: 20 000 lines took seconds); reading in place looks up only the names referenced.
    environ = _CountingEnviron({f"HOST_VAR_{i}": "h" for i in range(200)})
    lines = 2_000
    with monkeypatch.context() as patched:  # undone before pytest writes to os.environ again
        patched.setattr(os, "environ", environ)
        values = parse_env("".join(f"K{i}=${{K{i - 1}:-v}}x\n" for i in range(lines)))
    assert values[f"K{lines - 1}"] == "v" + "x" * lines
    assert environ.reads <= lines  # copying it per line would be 200 x 2 000 reads
