"""README.md documents every command and every option the CLI offers (hidden aliases excepted)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from albert_deploy.cli import cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
COMMANDS = {name: command for name, command in cli.commands.items() if not command.hidden}


def _options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and not p.hidden and p.name != "help"]


def _documented(text: str) -> bool:
    # As a word of a code span or table cell: `--json` must not match inside `--json-lines`.
    return re.search(rf"(?<![\w-]){re.escape(text)}(?![\w-])", README) is not None


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_in_the_readme(name: str) -> None:
    assert f"albert-deploy {name}" in README or f"`{name}`" in README, f"README.md does not name `{name}`"


@pytest.mark.parametrize(
    ("name", "flag"),
    sorted({(name, opt.opts[-1]) for name, command in COMMANDS.items() for opt in _options(command)}),
)
def test_every_option_is_in_the_readme(name: str, flag: str) -> None:
    command = COMMANDS[name]
    option = next(o for o in _options(command) if o.opts[-1] == flag)
    assert any(_documented(o) for o in option.opts), f"README.md does not name {' or '.join(option.opts)} of `{name}`"


def test_hidden_aliases_still_run_and_stay_out_of_the_help() -> None:
    hidden = {name for name, command in cli.commands.items() if command.hidden}
    assert hidden == {"plan", "plan-gpus"}
    help_text = cli.get_help(click.Context(cli))
    assert "plan-gpus" not in help_text and "diff" in help_text and "placement" in help_text
    assert cli.commands["plan"].callback is cli.commands["diff"].callback
    assert cli.commands["plan-gpus"].callback is cli.commands["placement"].callback
    old, new = (CliRunner().invoke(cli, [name, "--json"]) for name in ("plan-gpus", "placement"))
    assert old.exit_code == new.exit_code == 0 and old.stdout == new.stdout


def test_the_group_options_are_in_the_readme() -> None:
    assert all(any(_documented(o) for o in opt.opts) for opt in _options(cli))
