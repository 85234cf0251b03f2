"""The command line. Thin: parse options, call one function in ``commands``, print the result.

Exit codes: 0 success, 1 invalid profile or any other error the user can fix, 2 usage error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import click

from . import __version__
from .errors import DeployError

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="albert-deploy")
def cli() -> None:
    """Deploy the Albert API and its model servers from one profile.

    Without PROFILE, commands use the embedded default profile (profiles/default.yaml).
    """


@cli.command()
@PROFILE
@click.option("-o", "--output", default="deploy", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write compose.yml, config.yml and .env into.")
@JSON
def render(profile: str | None, output: Path, as_json: bool) -> None:
    """Write the compose file, the API config and the secrets for PROFILE."""
    from . import commands

    result = run(lambda: commands.render(profile, output))
    emit(result, as_json, _render_text)


@cli.command()
@PROFILE
@JSON
def validate(profile: str | None, as_json: bool) -> None:
    """Check PROFILE without writing anything."""
    from . import commands

    result = run(lambda: commands.validate(profile))
    emit(result, as_json, lambda r: f"{r['profile']}: valid ({len(r['models'])} models, Albert API {r['release']})")


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the profile format."""
    from . import commands

    click.echo(json.dumps(commands.schema(), indent=2, sort_keys=True))


def _render_text(result: dict[str, Any]) -> str:
    lines = [f"Rendered {result['profile']} (Albert API {result['release']}) into {result['output']}/"]
    width = max(len(s["service"]) for s in result["services"])
    for s in result["services"]:
        lines.append(f"  {s['service']:<{width}}  {s['role']:<8}  gpus {s['gpus']:<6}  {s['image']}")
    if result["operator_env"]:
        lines.append("Set if needed, in the environment or in .env: " + ", ".join(result["operator_env"]))
    lines.append(f"Start it with: albert-deploy up, or docker compose -f {result['output']}/compose.yml up -d --wait")
    return "\n".join(lines)


def main() -> None:
    cli(prog_name="albert-deploy")
