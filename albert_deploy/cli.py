"""The command line. Thin: parse options, call one function in ``commands``, print the result.

Exit codes: 0 success, 1 invalid profile or any other error the user can fix, 2 usage error.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import click

from albert_deploy import __version__, cli_backup, views
from albert_deploy.cli_base import JSON, PROFILE, emit, run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="albert-deploy")
def cli() -> None:
    """Deploy the Albert API and its model servers from one profile.

    Without PROFILE, commands use the embedded default profile (profiles/default.yaml).
    """


@cli.command()
@PROFILE
@click.option("-o", "--output", default="deploy", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write compose.yml, config.yml and .env (or the Kubernetes manifests) into.")  # fmt: skip
@click.option("--target", type=click.Choice(["compose", "kubernetes"]), default="compose", show_default=True,
              help="compose: compose.yml, config.yml and .env; kubernetes: manifests for `kubectl apply -k OUTPUT`.")  # fmt: skip
@JSON
def render(profile: str | None, output: Path, target: str, as_json: bool) -> None:
    """Write the compose file, the API config and the secrets for PROFILE (or Kubernetes manifests)."""
    from albert_deploy import commands

    result = run(lambda: commands.render(profile, output, target=target))
    emit(result, as_json, views.render_kubernetes_text if target == "kubernetes" else views.render_text)


@cli.command()
@PROFILE
@JSON
def validate(profile: str | None, as_json: bool) -> None:
    """Check PROFILE without writing anything."""
    from albert_deploy import commands

    result = run(lambda: commands.validate(profile))
    emit(result, as_json, views.validate_text)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the profile format."""
    from albert_deploy import commands

    click.echo(json.dumps(commands.schema(), indent=2, sort_keys=True))


@cli.command()
@PROFILE
@JSON
def placement(profile: str | None, as_json: bool) -> None:
    """Show which GPU each model gets, its memory budget and the derived server flags."""
    from albert_deploy import commands

    result = run(lambda: commands.placement(profile))
    emit(result, as_json, views.placement_text)


def hidden_alias(command: click.Command, name: str) -> None:
    """``name`` still runs ``command`` (its former name), without showing in the help."""
    alias = copy.copy(command)
    alias.hidden = True
    cli.add_command(alias, name)


hidden_alias(placement, "plan-gpus")


# --- converge: up, diff, down, status (ps), logs, check ---------------------------------------------

OUTPUT = click.option(
    "-o", "--output", default="deploy", show_default=True, type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the rendered compose.yml, config.yml and .env.",
)  # fmt: skip
PROJECT = click.option("-p", "--project", default=None, help="Compose project name (default: the profile's `project`).")
PARALLEL_PULLS = click.option(
    "--parallel-pulls", type=click.IntRange(min=1), default=4, show_default=True, metavar="N",
    help="Image pulls (and model downloads) at once. An image already here is not pulled again.",
)  # fmt: skip
NO_GPUS = click.option(
    "--no-gpus", is_flag=True,
    help="Start GPU services without their GPU reservations (a dry run of a GPU profile on a machine without GPUs). "
         "Such containers are recreated by the next `up` without this flag.",
)  # fmt: skip


@cli.command()
@PROFILE
@OUTPUT
@click.option("-d", "--detach", is_flag=True,
              help="Return once every container is started (the API still waits for its dependencies).")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Only say what would be done (same as `diff`).")
@NO_GPUS
@click.option("--timeout", "timeouts", multiple=True, metavar="[SERVICE=]SECONDS",
              help="Seconds to wait for services to turn healthy, counted from their start, after any pull "
                   "(default: from each health check's start period). Repeatable.")  # fmt: skip
@PARALLEL_PULLS
@JSON
def up(
    profile: str | None, output: Path, detach: bool, dry_run: bool, no_gpus: bool,
    timeouts: tuple[str, ...], parallel_pulls: int, as_json: bool,
) -> None:  # fmt: skip
    """Render PROFILE into OUTPUT, then create or update the stack until every service is healthy."""
    from albert_deploy import commands
    from albert_deploy.converge.progress import EventLines, reporter_for

    # With --json, stdout carries only the result: progress goes to stderr.
    reporter = EventLines(sys.stderr) if as_json else reporter_for(sys.stdout)
    result = run(lambda: commands.up(profile, output, no_gpus=no_gpus, timeouts=timeouts, detach=detach,
                                     dry_run=dry_run, reporter=reporter, parallel_pulls=parallel_pulls))  # fmt: skip
    emit(result, as_json, views.diff_text if dry_run else views.up_text)


@cli.command()
@PROFILE
@OUTPUT
@NO_GPUS
@JSON
def diff(profile: str | None, output: Path, no_gpus: bool, as_json: bool) -> None:
    """Say per service what `up` would do (create, recreate and why, start, nothing), touching nothing."""
    from albert_deploy import commands

    result = run(lambda: commands.diff(profile, output, no_gpus=no_gpus))
    emit(result, as_json, views.diff_text)


hidden_alias(diff, "plan")


@cli.command()
@PROFILE
@PROJECT
@click.option("-v", "--volumes", is_flag=True, help="Also remove the project's volumes (model caches, databases).")
@JSON
def down(profile: str | None, project: str | None, volumes: bool, as_json: bool) -> None:
    """Stop and remove the project's containers and network; volumes are kept unless --volumes."""
    from albert_deploy import commands

    result = run(lambda: commands.down(profile, project=project, volumes=volumes))
    emit(result, as_json, views.down_text)


@cli.command()
@PROFILE
@OUTPUT
@PROJECT
@click.option("--no-gpus", is_flag=True, help="Compare with what `up --no-gpus` would run.")
@JSON
def status(profile: str | None, output: Path, project: str | None, no_gpus: bool, as_json: bool) -> None:
    """Service, state, health, GPUs, ports and drift from what PROFILE renders now."""
    from albert_deploy import commands

    result = run(lambda: commands.status(profile, output, project=project, no_gpus=no_gpus))
    emit(result, as_json, views.status_text)


cli.add_command(status, name="ps")


@cli.command()
@click.argument("service")
@PROFILE
@PROJECT
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--tail", type=click.IntRange(min=0), default=None, help="Only the last N lines.")
def logs(service: str, profile: str | None, project: str | None, follow: bool, tail: int | None) -> None:
    """Print the logs of SERVICE."""
    from albert_deploy import commands

    stream = run(lambda: commands.logs(profile, service, project=project, follow=follow, tail=tail))
    out = sys.stdout.buffer
    try:
        for chunk in stream:
            out.write(chunk)
            out.flush()
    except KeyboardInterrupt:
        pass


@cli.command()
@PROFILE
@OUTPUT
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="Seconds per request.")
@JSON
def check(profile: str | None, output: Path, timeout: float, as_json: bool) -> None:
    """Call every model's endpoint with a tiny request and check the answer's shape; exit 1 on any failure."""
    from albert_deploy import commands
    from albert_deploy.errors import CheckFailed

    result = run(lambda: commands.check(profile, output, timeout=timeout))
    emit(result, as_json, views.check_text)
    if not result["ok"]:
        failed = [f"{r['name']} ({r['via']})" for r in result["results"] if not r["ok"]]
        run(lambda: _raise(CheckFailed(f"{len(failed)} check(s) failed: {', '.join(failed)}")))


# --- air-gapped operations: pull, lock, bundle, load ---------------------------------------------


@cli.command()
@PROFILE
@OUTPUT
@PARALLEL_PULLS
@JSON
def pull(profile: str | None, output: Path, parallel_pulls: int, as_json: bool) -> None:
    """Pull every image PROFILE needs and download every hosted model into its server's cache volume.

    The Hugging Face token is read from HF_TOKEN in the environment, else from OUTPUT/.env; it
    reaches the download container through its environment only."""
    from albert_deploy import commands
    from albert_deploy.converge.progress import EventLines, reporter_for

    reporter = EventLines(sys.stderr) if as_json else reporter_for(sys.stdout)
    result = run(lambda: commands.pull(profile, output, reporter=reporter, parallel=parallel_pulls))
    emit(result, as_json, views.pull_text)


@cli.command()
@PROFILE
@JSON
def lock(profile: str | None, as_json: bool) -> None:
    """Resolve every image of PROFILE to its content digest and write PROFILE.lock.json beside it.

    `render` and `up` then run image@sha256:... (the embedded default: ./default.lock.json)."""
    from albert_deploy import commands

    result = run(lambda: commands.lock(profile))
    emit(result, as_json, views.lock_text)


@cli.command()
@PROFILE
@click.option("-o", "--output", "target", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The archive to write (an uncompressed tar).")  # fmt: skip
@JSON
def bundle(profile: str | None, target: Path, as_json: bool) -> None:
    """Write one archive with the images, the model caches, the rendered files (not .env) and the profile.

    Run `albert-deploy pull` first: the images and the model caches are taken from this host."""
    from albert_deploy import commands

    result = run(lambda: commands.bundle(profile, target))
    emit(result, as_json, views.bundle_text)


@cli.command()
@click.argument("bundle_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@OUTPUT
@click.option("--profile-dir", default=".", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where to write the bundled profile and its lock file.")  # fmt: skip
@JSON
def load(bundle_file: Path, output: Path, profile_dir: Path, as_json: bool) -> None:
    """Verify every sha256 of FILE, then restore its images, model-cache volumes and rendered files."""
    from albert_deploy import commands

    result = run(lambda: commands.load_bundle(bundle_file, output, profile_dir))
    emit(result, as_json, views.load_text)


def _raise(err: Exception) -> None:
    raise err


# backup and restore: in cli_backup.py (this module's size limit).
cli.add_command(cli_backup.backup)
cli.add_command(cli_backup.restore)


def main() -> None:
    cli(prog_name="albert-deploy")
