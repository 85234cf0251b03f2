"""The one .env reader and writer (python-dotenv): operator lines and `export` forms survive."""

from __future__ import annotations

import pytest

from albert_deploy.errors import RenderError
from albert_deploy.render.envfile import HEADER, parse_env, render_env

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
