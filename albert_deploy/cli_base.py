"""What every command of the CLI shares: the PROFILE argument, --json, and error handling."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from albert_deploy.errors import DeployError

PROFILE = click.argument("profile", required=False, type=click.Path(dir_okay=False))
JSON = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text.")


def run(fn: Callable[[], Any]) -> Any:
    """Turn the one error hierarchy into a message on stderr and a stable exit code."""
    try:
        return fn()
    except DeployError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)


def emit(result: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    click.echo(json.dumps(result, indent=2, sort_keys=True) if as_json else text(result))
