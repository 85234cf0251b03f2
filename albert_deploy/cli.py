"""The command line. Thin: parse options, call one function in ``commands``, print the result.

Exit codes: 0 success, 1 invalid profile or any other error the user can fix, 2 usage error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
              help="Directory to write compose.yml, config.yml and .env (or the Kubernetes manifests) into.")
@click.option("--target", type=click.Choice(["compose", "kubernetes"]), default="compose", show_default=True,
              help="compose: compose.yml, config.yml and .env; kubernetes: manifests for `kubectl apply -k OUTPUT`.")
@JSON
def render(profile: str | None, output: Path, target: str, as_json: bool) -> None:
    """Write the compose file, the API config and the secrets for PROFILE (or Kubernetes manifests)."""
    from . import commands

    result = run(lambda: commands.render(profile, output, target=target))
    emit(result, as_json, _render_kubernetes_text if target == "kubernetes" else _render_text)


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


@cli.command("plan-gpus")
@PROFILE
@JSON
def plan_gpus(profile: str | None, as_json: bool) -> None:
    """Show which GPU each model gets, its memory budget and the derived server flags."""
    from . import commands

    result = run(lambda: commands.plan_gpus(profile))
    emit(result, as_json, lambda r: r.pop("text"))


# --- apply: up, plan, down, status (ps), logs, check ---------------------------------------------

OUTPUT = click.option(
    "-o", "--output", default="deploy", show_default=True, type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the rendered compose.yml, config.yml and .env.",
)  # fmt: skip
PROJECT = click.option("-p", "--project", default=None, help="Compose project name (default: the profile's `project`).")
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
@click.option("--dry-run", is_flag=True, help="Only say what would be done (same as `plan`).")
@NO_GPUS
@click.option("--timeout", "timeouts", multiple=True, metavar="[SERVICE=]SECONDS",
              help="Seconds to wait for services to turn healthy "
                   "(default: from each health check's start period). Repeatable.")  # fmt: skip
@JSON
def up(
    profile: str | None, output: Path, detach: bool, dry_run: bool, no_gpus: bool,
    timeouts: tuple[str, ...], as_json: bool,
) -> None:  # fmt: skip
    """Render PROFILE into OUTPUT, then create or update the stack until every service is healthy."""
    from . import commands
    from .progress import EventLines, reporter_for

    # With --json, stdout carries only the result: progress goes to stderr.
    reporter = EventLines(sys.stderr) if as_json else reporter_for(sys.stdout)
    result = run(lambda: commands.up(profile, output, no_gpus=no_gpus, timeouts=timeouts, detach=detach,
                                     dry_run=dry_run, reporter=reporter))  # fmt: skip
    emit(result, as_json, _plan_text if dry_run else _up_text)


@cli.command()
@PROFILE
@OUTPUT
@NO_GPUS
@JSON
def plan(profile: str | None, output: Path, no_gpus: bool, as_json: bool) -> None:
    """Say per service what `up` would do (create, recreate and why, start, nothing), touching nothing."""
    from . import commands

    result = run(lambda: commands.plan(profile, output, no_gpus=no_gpus))
    emit(result, as_json, _plan_text)


@cli.command()
@PROFILE
@PROJECT
@click.option("-v", "--volumes", is_flag=True, help="Also remove the project's volumes (model caches, databases).")
@JSON
def down(profile: str | None, project: str | None, volumes: bool, as_json: bool) -> None:
    """Stop and remove the project's containers and network; volumes are kept unless --volumes."""
    from . import commands

    result = run(lambda: commands.down(profile, project=project, volumes=volumes))
    emit(result, as_json, _down_text)


@cli.command()
@PROFILE
@OUTPUT
@PROJECT
@click.option("--no-gpus", is_flag=True, help="Compare with what `up --no-gpus` would run.")
@JSON
def status(profile: str | None, output: Path, project: str | None, no_gpus: bool, as_json: bool) -> None:
    """Service, state, health, GPUs, ports and drift from what PROFILE renders now."""
    from . import commands

    result = run(lambda: commands.status(profile, output, project=project, no_gpus=no_gpus))
    emit(result, as_json, _status_text)


cli.add_command(status, name="ps")


@cli.command()
@click.argument("service")
@PROFILE
@PROJECT
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--tail", type=click.IntRange(min=0), default=None, help="Only the last N lines.")
def logs(service: str, profile: str | None, project: str | None, follow: bool, tail: int | None) -> None:
    """Print the logs of SERVICE."""
    from . import commands

    stream = run(lambda: commands.logs(profile, service, project=project, follow=follow, tail=tail))
    out = click.get_binary_stream("stdout")
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
    from . import commands
    from .errors import CheckFailed

    result = run(lambda: commands.check(profile, output, timeout=timeout))
    emit(result, as_json, _check_text)
    if not result["ok"]:
        failed = [f"{r['name']} ({r['via']})" for r in result["results"] if not r["ok"]]
        run(lambda: _raise(CheckFailed(f"{len(failed)} check(s) failed: {', '.join(failed)}")))


# --- air-gapped operations: pull, lock, bundle, load ---------------------------------------------


@cli.command()
@PROFILE
@OUTPUT
@JSON
def pull(profile: str | None, output: Path, as_json: bool) -> None:
    """Pull every image PROFILE needs and download every hosted model into its server's cache volume.

    The Hugging Face token is read from HF_TOKEN in the environment, else from OUTPUT/.env; it
    reaches the download container through its environment only."""
    from . import commands
    from .progress import EventLines, reporter_for

    reporter = EventLines(sys.stderr) if as_json else reporter_for(sys.stdout)
    result = run(lambda: commands.pull(profile, output, reporter=reporter))
    emit(result, as_json, _pull_text)


@cli.command()
@PROFILE
@JSON
def lock(profile: str | None, as_json: bool) -> None:
    """Resolve every image of PROFILE to its content digest and write PROFILE.lock.json beside it.

    `render` and `up` then run image@sha256:... (the embedded default: ./default.lock.json)."""
    from . import commands

    result = run(lambda: commands.lock(profile))
    emit(result, as_json, _lock_text)


@cli.command()
@PROFILE
@click.option("-o", "--output", "target", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The archive to write (an uncompressed tar).")  # fmt: skip
@JSON
def bundle(profile: str | None, target: Path, as_json: bool) -> None:
    """Write one archive with the images, the model caches, the rendered files (not .env) and the profile.

    Run `albert-deploy pull` first: the images and the model caches are taken from this host."""
    from . import commands

    result = run(lambda: commands.bundle(profile, target))
    emit(result, as_json, _bundle_text)


@cli.command()
@click.argument("bundle_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@OUTPUT
@click.option("--profile-dir", default=".", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where to write the bundled profile and its lock file.")  # fmt: skip
@JSON
def load(bundle_file: Path, output: Path, profile_dir: Path, as_json: bool) -> None:
    """Verify every sha256 of FILE, then restore its images, model-cache volumes and rendered files."""
    from . import commands

    result = run(lambda: commands.load_bundle(bundle_file, output, profile_dir))
    emit(result, as_json, _load_text)


def _pull_text(result: dict[str, Any]) -> str:
    lines = [f"Pulled {len(result['images'])} image(s):", *(f"  {i['image']}" for i in result["images"])]
    if result["models"]:
        lines.append(f"Downloaded {len(result['models'])} model(s) with {result['downloader']} "
                     f"(Hugging Face token {result['token']}):")  # fmt: skip
        lines += [f"  {m['model']} -> volume {m['volume']}" for m in result["models"]]
    return "\n".join(lines)


def _lock_text(result: dict[str, Any]) -> str:
    lines = [f"Wrote {result['lock']}:"]
    for i in result["images"]:
        pinned = i["pinned"] or "not pinned: a local image with no registry digest (built or loaded here)"
        lines.append(f"  {i['image']} -> {pinned}")
    return "\n".join(lines)


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _bundle_text(result: dict[str, Any]) -> str:
    return "\n".join([f"Wrote {result['bundle']} ({_size(result['size'])}, {result['seconds']} s): "
                      f"{len(result['images'])} image(s), {len(result['volumes'])} model cache(s)",
                      *(f"  {n}  {_size(m['size'])}  sha256 {m['sha256'][:16]}" for n, m in result["members"].items()),
                      "On the offline host: albert-deploy load FILE"])  # fmt: skip


def _load_text(result: dict[str, Any]) -> str:
    return "\n".join([f"Verified and loaded {result['bundle']} in {result['seconds']} s:",
                      *(f"  image {i}" for i in result["images"]), *(f"  volume {v}" for v in result["volumes"]),
                      f"  rendered files in {result['output']} ({result['files']})",
                      *(f"  profile {p}" for p in result["profile"]),
                      "Start it with: albert-deploy up " + (result["profile"][0] if result["profile"] else "")])  # fmt: skip


def _raise(err: Exception) -> None:
    raise err


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _plan_text(result: dict[str, Any]) -> str:
    rows = [["SERVICE", "ACTION", "WHY"]] + [[a["service"], a["action"], a["reason"]] for a in result["actions"]]
    verdict = f"{result['changes']} change(s)" if result["changes"] else "nothing to do: the stack matches the profile"
    order = [f"  GPU {o['gpu']}: " + " -> ".join(o["services"]) for o in result.get("start_order", [])]
    if order:
        order.insert(0, "Start order per GPU (each once the previous one is healthy; GPUs in parallel):")
    return "\n".join([f"Project {result['project']}: {verdict}", *_table(rows), *order])


def _up_text(result: dict[str, Any]) -> str:
    rows = [["SERVICE", "IMAGE", "GPUS", "URL", "HEALTH"]]
    rows += [[s["service"], s["image"], s["gpus"], s["url"], s["health"] or s["state"]] for s in result["services"]]
    how = "started (not waiting for health: --detach)" if result["detached"] else "is up"
    changes = f"{result['changes']} change(s)" if result["changes"] else "nothing changed"
    return "\n".join([*_table(rows), f"Project {result['project']} {how}: {changes} in {result['seconds']:.1f} s.",
                      f"Albert API: {result['api_url']}"])  # fmt: skip


def _down_text(result: dict[str, Any]) -> str:
    if not result["containers"] and not result["networks"] and not result["volumes"]:
        return f"Project {result['project']}: nothing to remove."
    lines = [f"Project {result['project']}: removed {len(result['containers'])} container(s)"]
    lines += [f"  container {c}" for c in result["containers"]]
    lines += [f"  network {n}" for n in result["networks"]]
    lines += [f"  volume {v}" for v in result["volumes"]]
    if not result["volumes"]:
        lines.append("Volumes were kept (use --volumes to remove them).")
    return "\n".join(lines)


def _status_text(result: dict[str, Any]) -> str:
    if not result["services"]:
        return f"Project {result['project']}: no containers."
    rows = [["SERVICE", "STATE", "HEALTH", "GPUS", "PORTS", "LOCK", "DRIFT"]]
    rows += [[s["service"], s["state"], s["health"] or "-", s["gpus"], ",".join(s["ports"]) or "-", s["lock"],
              s["drift"]] for s in result["services"]]  # fmt: skip
    lines = [f"Project {result['project']}", *_table(rows)]
    if result["drift"]:
        lines.append("The stack differs from the profile: `albert-deploy plan` says what `up` would change.")
    if result.get("lock_mismatch"):
        lines.append("A container runs an image other than the lock file's: `albert-deploy up` recreates it.")
    if any(s["started_by"] == "docker compose" for s in result["services"]):
        lines.append("Containers started by docker compose carry compose's own config hash: "
                     "`albert-deploy up` recreates them once.")  # fmt: skip
    return "\n".join(lines)


def _check_text(result: dict[str, Any]) -> str:
    rows = [["MODEL", "VIA", "RESULT", "DETAIL"]]
    rows += [[r["name"], r["via"], "ok" if r["ok"] else "FAILED", r["detail"]] for r in result["results"]]
    return "\n".join([*_table(rows), *result["notes"]])


def _render_text(result: dict[str, Any]) -> str:
    lines = [f"Rendered {result['profile']} (Albert API {result['release']}) into {result['output']}/"]
    width = max(len(s["service"]) for s in result["services"])
    for s in result["services"]:
        lines.append(f"  {s['service']:<{width}}  {s['role']:<8}  gpus {s['gpus']:<6}  {s['image']}")
    if result["operator_env"]:
        lines.append("Set if needed, in the environment or in .env: " + ", ".join(result["operator_env"]))
    lines.append(f"Start it with: albert-deploy up, or docker compose -f {result['output']}/compose.yml up -d --wait")
    return "\n".join(lines)


def _render_kubernetes_text(result: dict[str, Any]) -> str:
    lines = [f"Rendered {result['profile']} (Albert API {result['release']}) as Kubernetes manifests into "
             f"{result['output']}/ (namespace {result['namespace']})"]  # fmt: skip
    rows = [[w["service"], w["kind"], w["role"], f"gpus {w['gpus'] or '-'}", w["image"]] for w in result["workloads"]]
    lines += ["  " + row for row in _table(rows)]
    lines += [f"Kubernetes name of {old}: {new}" for old, new in result["renamed"].items()]
    needed, optional = result["operator_required"], result["operator_optional"]
    if needed or optional:
        keys = " ".join(f"--from-literal={k}=..." for k in needed + optional)
        what = ", ".join([*(f"{k} required" for k in needed), *(f"{k} optional" for k in optional)])
        lines.append(f"Your own variables ({what}) go in Secret {result['operator_secret']}; create it with:\n"
                     f"  kubectl -n {result['namespace']} create secret generic {result['operator_secret']} {keys}")  # fmt: skip
    lines.append(f"Apply it with: kubectl apply -k {result['output']}")
    return "\n".join(lines)


def main() -> None:
    cli(prog_name="albert-deploy")
