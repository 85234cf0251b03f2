"""plan -> files: compose.yml, config.yml and .env, verified, then written all at once."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from albert_deploy import __version__
from albert_deploy.errors import RenderError
from albert_deploy.plan.build import Plan
from albert_deploy.plan.releases import MODULES
from albert_deploy.plan.releases.playground import check_config as check_playground
from albert_deploy.plan.spec import Joined, Ref, Service
from albert_deploy.render import caddy, envfile, output, runbook
from albert_deploy.render.monitoring import monitoring_files
from albert_deploy.resources import template_path, template_text

COMPOSE_FILE = "compose.yml"
CONFIG_FILE = "config.yml"
ENV_FILE = ".env"
RUNBOOK_FILE = "RUNBOOK.md"
GENERATED = (COMPOSE_FILE, CONFIG_FILE, ENV_FILE, RUNBOOK_FILE, caddy.CONFIG_FILE, "monitoring")

# Characters YAML treats as line breaks or refuses outright, beyond what JSON escapes.
_YAML_UNSAFE = {"\u0085", "\u2028", "\u2029", "\ufeff"}


@dataclass(frozen=True)
class Rendered:
    files: dict[str, str]  # name -> text
    secret_files: tuple[str, ...]  # written with mode 0600


def to_yaml_scalar(value: Any, escape: Callable[[str], str]) -> str:
    """Serialise ``value`` as JSON, which YAML reads back unchanged.

    ``escape`` protects literal text from the reader's own interpolation (compose's ``$``);
    references are written as ``${NAME}`` so that interpolation fills them."""
    text = json.dumps(_literal(value, escape), ensure_ascii=False)
    if text.isprintable() and _YAML_UNSAFE.isdisjoint(text):
        return text  # the common case: nothing to escape
    return "".join(_yaml_escape(c) for c in text)


def _literal(value: Any, escape: Callable[[str], str]) -> Any:
    if isinstance(value, Ref):
        return str(value)
    if isinstance(value, Joined):
        return "".join(str(p) if isinstance(p, Ref) else escape(p) for p in value.parts)
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {k: _literal(v, escape) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_literal(v, escape) for v in value]
    return value


def _yaml_escape(char: str) -> str:
    if char.isprintable() or char in "\n\t" or char == " ":
        return char if char not in _YAML_UNSAFE else f"\\u{ord(char):04x}"
    return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"


def _dollar(text: str) -> str:
    return text.replace("$", "$$")


def _keep(text: str) -> str:
    return text


def _comment(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in str(text))


@cache
def _bytecode_cache() -> Any:
    """Compiled templates, kept in Jinja's per-user temporary directory: compiling them is most of
    render's own time. Keyed by each template's source checksum, so an edit is never served stale."""
    import jinja2

    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):  # no usable private temporary directory: compile every time
        return None


def _template_source(name: str) -> tuple[str, str, Callable[[], bool]]:
    # With its file name, a template's cache entry is this installation's: Jinja keys the bytecode cache by
    # name and file name, so two installations with different templates would evict each other's entries.
    return template_text(name), str(template_path(name)), lambda: True


def _environment(escape: Callable[[str], str]) -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_source),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        bytecode_cache=_bytecode_cache(),
    )
    env.filters["q"] = lambda v: to_yaml_scalar(v, _dollar)
    env.filters["v"] = lambda v: to_yaml_scalar(v, escape)
    env.filters["comment"] = lambda text: escape(_comment(text))
    return env


def render_plan(plan: Plan, existing_env: str | None = None) -> Rendered:
    """All output files as text. ``existing_env``: the current .env, whose secrets are kept."""
    compose_text = _environment(_dollar).get_template("compose.yml.j2").render(
        version=__version__, source=plan.source, project=plan.project,
        services=plan.services, volumes=plan.volumes,
    )  # fmt: skip
    config_text = render_config(plan)
    env_text = envfile.render_env(plan.secrets, plan.operator_env, existing_env)
    runbook_env = _environment(_keep)
    runbook_env.filters["md"] = runbook.md
    runbook_text = runbook_env.get_template("RUNBOOK.md.j2").render(
        version=__version__, source=plan.source, project=plan.project, release=plan.release.version,
        **runbook.runbook_context(plan),
    )  # fmt: skip
    _verify_compose(compose_text, plan)
    _verify_config(config_text, plan)
    files = {COMPOSE_FILE: compose_text, CONFIG_FILE: config_text, ENV_FILE: env_text, RUNBOOK_FILE: runbook_text}
    if plan.front:
        files[caddy.CONFIG_FILE] = caddy.caddy_json(plan.front)
    files.update(monitoring_files(plan))  # monitoring/: Prometheus and Grafana files, when monitoring is on
    return Rendered(files, (ENV_FILE,))


def render_config(plan: Plan) -> str:
    """The API config in the release's format, with ``${NAME}`` for secrets (every target mounts this text)."""
    # 0.1+ releases substitute ${NAME} themselves with no escape; 0.0.x go through string.Template.
    config_escape = _keep if plan.release.substitutes_env else _dollar
    template = _environment(config_escape).get_template(plan.release.template)
    return str(template.render(version=__version__, source=plan.source, release=plan.release.version, **plan.config))


def existing_env(out_dir: Path) -> str | None:
    """The .env of a previous render in ``out_dir`` (its secrets are kept), or None."""
    path = out_dir / ENV_FILE
    return path.read_text(encoding="utf-8") if path.is_file() else None


def write_rendered(rendered: Rendered, out_dir: Path) -> str:
    """Returns "created", "updated" (previous output kept in DIR.backups/) or "unchanged"."""
    return output.replace_directory(out_dir, rendered.files, rendered.secret_files, GENERATED)


def _load(text: str, name: str) -> Any:
    import yaml

    # libyaml when present: the check-back is most of render's time with the pure-Python parser.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as err:  # a template bug, never a user error
        raise RenderError(f"internal error: the rendered {name} is not valid YAML ({err}); please report it") from None


def _verify_compose(text: str, plan: Plan) -> None:
    """Load the file back and compare it with what was planned."""
    data = _load(text, COMPOSE_FILE)
    services = data.get("services") or {}
    if list(services) != [s.name for s in plan.services]:
        raise RenderError(f"internal error: {COMPOSE_FILE} lists services {list(services)}; please report it")
    for planned in plan.services:
        _check_service(services[planned.name], planned)


def _check_service(loaded: dict[str, Any], planned: Service) -> None:
    def same(key: str, got: Any, want: Any) -> None:
        if got != want:
            raise RenderError(
                f"internal error: {COMPOSE_FILE} service {planned.name}.{key} came back as {got!r}; please report it"
            )

    same("image", loaded.get("image"), _dollar(planned.image))
    command = planned.compose_command or planned.command
    same("command", loaded.get("command"), _literal(list(command), _dollar) or None)
    entrypoint = planned.compose_entrypoint or planned.entrypoint
    same("entrypoint", loaded.get("entrypoint"), None if entrypoint is None else _literal(list(entrypoint), _dollar))
    same("environment", loaded.get("environment"), _literal(planned.environment, _dollar) or None)


def _verify_config(text: str, plan: Plan) -> None:
    data = _load(text, CONFIG_FILE)
    MODULES[plan.release.version].validate_config(data)
    if plan.config.get("playground"):
        problems = check_playground(data)
        if problems:
            raise RenderError(
                f"config.yml does not suit the playground of release {plan.release.version}: {problems[0]}"
            )
