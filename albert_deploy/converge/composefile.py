"""compose.yml + .env -> plain dicts, interpolated the way Docker Compose does it.

Only what ``render`` writes needs to be understood here, but interpolation follows the compose
specification so that ``docker compose`` and ``albert-deploy up`` read the same values:
``$$`` is a literal ``$``; ``${VAR}``, ``$VAR``, ``${VAR:-default}``, ``${VAR-default}``,
``${VAR:?error}``, ``${VAR?error}``, ``${VAR:+alt}``, ``${VAR+alt}``; the process environment
overrides ``.env``; an unset variable becomes an empty string (compose warns; so do we).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from albert_deploy.errors import DockerError

# Bump when the canonical form changes: every container is then recreated once, on purpose.
HASH_SCHEME = "1"

# Keys of a service that `up` applies. Anything else in the file is refused, not ignored.
SERVICE_KEYS = {
    "image", "command", "entrypoint", "user", "restart", "environment", "ports", "volumes",
    "shm_size", "healthcheck", "deploy", "depends_on",
}  # fmt: skip

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Project:
    """A compose file, interpolated. ``services`` keep the file's order (start order ties)."""

    name: str
    working_dir: str  # absolute; relative bind sources are resolved against it
    config_file: str  # absolute path of compose.yml
    services: dict[str, dict[str, Any]]
    volumes: tuple[str, ...]
    unset: tuple[str, ...] = ()  # variables used but set nowhere (names only, never values)
    files: dict[str, bytes] = field(default_factory=dict, compare=False)  # bind source -> content, for hashing


def parse_env_file(text: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Compose's .env dialect: ``KEY=VALUE``, optional ``export``, quotes, ``#`` comments.

    Single-quoted values are literal; double-quoted and bare values are interpolated from the
    variables defined above them (and the process environment, which wins)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        if "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if not _NAME.fullmatch(key):
            continue
        lookup = {**values, **(environ or {})}
        if len(value) >= 2 and value[0] == value[-1] == "'":
            values[key] = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            inner = value[1:-1].replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
            values[key] = interpolate(inner, lookup, [])
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0]
            values[key] = interpolate(value, lookup, [])
    return values


def interpolate(text: str, env: Mapping[str, str], unset: list[str]) -> str:
    """Replace every variable in ``text``; names of unset ones are appended to ``unset``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _closing_brace(text, i + 2)
            out.append(_expand(text[i + 2 : end], env, unset))
            i = end + 1
        else:
            match = _NAME.match(text, i + 1)
            if not match:
                out.append("$")  # a lone `$` stays, as compose leaves it
                i += 1
                continue
            out.append(_lookup(match.group(), env, unset))
            i = match.end()
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise DockerError(f"compose.yml: unterminated '${{' in a value ({_shorten(text)}); fix the profile")


def _expand(body: str, env: Mapping[str, str], unset: list[str]) -> str:
    match = _NAME.match(body)
    if not match:
        raise DockerError(f"compose.yml: invalid variable '${{{_shorten(body)}}}'")
    name, rest = match.group(), body[match.end() :]
    value = env.get(name)
    if rest == "":
        return _lookup(name, env, unset)
    for op in (":-", "-", ":?", "?", ":+", "+"):
        if rest.startswith(op):
            arg = rest[len(op) :]
            empty_counts = op.startswith(":")
            missing = value is None or (empty_counts and value == "")
            if op in (":-", "-"):
                return interpolate(arg, env, unset) if missing else str(value)
            if op in (":?", "?"):
                if missing:
                    # The message is the file's own text; never the variable's value.
                    raise DockerError(f"required variable {name} is missing a value: {interpolate(arg, env, unset)}")
                return str(value)
            return "" if missing else interpolate(arg, env, unset)
    raise DockerError(f"compose.yml: invalid variable '${{{_shorten(body)}}}'")


def _lookup(name: str, env: Mapping[str, str], unset: list[str]) -> str:
    if name not in env:
        unset.append(name)
        return ""
    return env[name]


def _shorten(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _walk(value: Any, env: Mapping[str, str], unset: list[str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env, unset)
    if isinstance(value, dict):
        return {k: _walk(v, env, unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, env, unset) for v in value]
    return value


def load_project(
    compose_text: str,
    working_dir: Path,
    env_text: str = "",
    environ: Mapping[str, str] | None = None,
    files: Mapping[str, bytes] | None = None,
) -> Project:
    """Interpolate a compose file. ``files`` gives bind-mount contents that are not on disk yet
    (``plan`` renders in memory); otherwise they are read from ``working_dir``."""
    import yaml

    environ = os.environ if environ is None else environ
    env = {**parse_env_file(env_text, environ), **environ}  # the process environment wins, as in compose
    try:
        raw = yaml.safe_load(compose_text) or {}
    except yaml.YAMLError as err:
        raise DockerError(f"compose.yml is not valid YAML ({err}); render it again") from None
    unset: list[str] = []
    data = _walk(raw, env, unset)
    working_dir = working_dir.resolve()
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise DockerError("compose.yml has no project `name`; render it again with albert-deploy")
    services: dict[str, dict[str, Any]] = {}
    contents: dict[str, bytes] = {}
    for service, spec in (data.get("services") or {}).items():
        unknown = sorted(set(spec) - SERVICE_KEYS)
        if unknown:
            raise DockerError(
                f"compose.yml: service {service} uses {', '.join(unknown)}, which albert-deploy up does not apply; "
                "use `docker compose up` for hand-edited files"
            )
        services[service] = _normalise(spec, working_dir, contents, files or {})
    return Project(
        name=name,
        working_dir=str(working_dir),
        config_file=str(working_dir / "compose.yml"),
        services=services,
        volumes=tuple(data.get("volumes") or {}),
        unset=tuple(sorted(set(unset))),
        files=contents,
    )


def _normalise(
    spec: dict[str, Any], working_dir: Path, contents: dict[str, bytes], given: Mapping[str, bytes]
) -> dict[str, Any]:
    """Resolve relative bind sources (as compose does) and remember what the files hold."""
    spec = dict(spec)
    volumes = []
    for mount in spec.get("volumes") or []:
        mount = dict(mount)
        if mount.get("type") == "bind":
            relative = str(mount["source"])
            source = (working_dir / relative).resolve() if not os.path.isabs(relative) else Path(relative)
            mount["source"] = str(source)
            contents[str(source)] = _content(relative, source, given)
        volumes.append(mount)
    if volumes:
        spec["volumes"] = volumes
    return spec


def _content(relative: str, source: Path, given: Mapping[str, bytes]) -> bytes:
    key = relative.removeprefix("./")
    if key in given:
        return given[key]
    try:
        return source.read_bytes() if source.is_file() else b""
    except OSError:
        return b""


def without_gpus(project: Project) -> Project:
    """The same project with every GPU reservation dropped (``up --no-gpus``)."""
    services = {}
    for name, spec in project.services.items():
        spec = dict(spec)
        if gpu_devices(spec):
            spec.pop("deploy", None)
            spec["x-no-gpus"] = True  # part of the hash: a GPU-less container is not the one the profile wants
        services[name] = spec
    return Project(
        project.name, project.working_dir, project.config_file, services, project.volumes, project.unset, project.files
    )


def gpu_devices(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    reservations = ((spec.get("deploy") or {}).get("resources") or {}).get("reservations") or {}
    return [d for d in reservations.get("devices") or [] if "gpu" in (d.get("capabilities") or [])]


def config_hash(project: Project, service: str) -> str:
    """What defines the container: its interpolated service entry and its bind-mounted files.

    Written into ``com.docker.compose.config-hash``: a changed config.yml recreates the API."""
    spec = project.services[service]
    digest = hashlib.sha256()
    digest.update(f"albert-deploy-hash/{HASH_SCHEME}\n".encode())
    digest.update(json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str).encode())
    for mount in spec.get("volumes") or []:
        if mount.get("type") == "bind":
            digest.update(b"\n" + str(mount["source"]).encode() + b"\n")
            digest.update(hashlib.sha256(project.files.get(str(mount["source"]), b"")).digest())
    return digest.hexdigest()


def depends_on(spec: Mapping[str, Any]) -> dict[str, str]:
    """service -> condition (``service_healthy``, ``service_started``...)."""
    deps = spec.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {name: (opts or {}).get("condition", "service_started") for name, opts in deps.items()}


def duration_seconds(value: Any, default: float) -> float:
    """Compose durations: ``"1m30s"``, ``"10s"``, ``"500ms"``, or a number of seconds."""
    if value is None:
        return default
    if isinstance(value, (int, float)):
        return float(value)
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", str(value).strip())
    if not parts or "".join(n + u for n, u in parts) != str(value).strip():
        raise DockerError(f"compose.yml: '{value}' is not a duration (write it as 10s or 1m30s)")
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    for number, unit in parts:
        total += float(number) * scale[unit]
    return total
