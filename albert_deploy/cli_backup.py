"""The `backup` and `restore` commands, added to the ``cli`` group (kept apart for cli.py's size)."""

from __future__ import annotations

from pathlib import Path

import click

from albert_deploy import views
from albert_deploy.cli_base import JSON, PROFILE, emit, run


@click.command()
@PROFILE
@click.option("-o", "--output", "target", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The archive to write (an uncompressed tar).")  # fmt: skip
@click.option("--with-models", is_flag=True, help="Also save the model caches (large; they can be downloaded again).")
@JSON
def backup(profile: str | None, target: Path, with_models: bool, as_json: bool) -> None:
    """Save the running stack's postgres, redis and qdrant into one archive, online, with a sha256 per member.

    postgres through pg_dump, redis through BGSAVE, qdrant through its snapshot API; no container
    stops. Model caches only with --with-models. Elasticsearch is refused."""
    from albert_deploy import commands

    result = run(lambda: commands.backup(profile, target, with_models=with_models))
    emit(result, as_json, views.backup_text)


@click.command()
@click.argument("backup_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@PROFILE
@JSON
def restore(backup_file: Path, profile: str | None, as_json: bool) -> None:
    """Verify every sha256 of FILE, then restore it into PROFILE's running stack (same release and store).

    The API is stopped while postgres, qdrant and redis are replaced, then started again."""
    from albert_deploy import commands

    result = run(lambda: commands.restore(backup_file, profile))
    emit(result, as_json, views.restore_text)
