"""Loading a profile: YAML in, a validated Profile out, or one clear line naming the key and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from albert_deploy.errors import ProfileError
from albert_deploy.profile.api import Api
from albert_deploy.profile.bounds import KUBERNETES_DESCRIPTION
from albert_deploy.profile.gpus import Gpu, GpuPool
from albert_deploy.profile.model import ENV_NAME_PATTERN, ExternalModel, HostedModel, Profile
from albert_deploy.profile.strict import _LocatedError

DEFAULT_PROFILE = "<embedded default profile>"
# A profile is a few kilobytes, a handful of levels deep: refuse anything far beyond that before
# parsing (`validate /dev/zero` would read forever; deep nesting exhausts Python's stack).
MAX_PROFILE_BYTES = 2**20
MAX_DEPTH = 32


def load_profile(path: str | Path | None) -> Profile:
    """Read and validate a profile file; ``None`` loads the embedded default."""
    import yaml

    if path is None:
        from albert_deploy.resources import default_profile_text

        source, text = DEFAULT_PROFILE, default_profile_text()
    else:
        source = str(path)
        try:
            text = _read_bounded(Path(path), source)
        except FileNotFoundError:
            raise ProfileError(
                f"{source}: no such file; give the path of a profile (see profiles/ for examples)"
            ) from None
        except (OSError, UnicodeDecodeError) as err:
            raise ProfileError(f"{source}: cannot read it ({err})") from None
    try:
        _check_depth(text, source)
        data = _parse_yaml(text)
    except RecursionError:  # a last resort: _check_depth refuses deep nesting first
        raise ProfileError(f"{source}: nested too deeply for a profile") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(err, "problem", None) or str(err)
        raise ProfileError(f"{source}: invalid YAML at {where}: {problem}") from None
    return validate_profile(data, source)


def _read_bounded(path: Path, source: str) -> str:
    with path.open("rb") as file:
        data = file.read(MAX_PROFILE_BYTES + 1)
    if len(data) > MAX_PROFILE_BYTES:
        raise ProfileError(
            f"{source}: larger than {MAX_PROFILE_BYTES // 2**20} MiB; a profile is a few kilobytes: "
            "give the path of a profile (see profiles/ for examples)"
        )
    return data.decode("utf-8")


def _check_depth(text: str, source: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH, from the parser's events (the parser does not recurse)."""
    import yaml

    depth = 0
    try:
        for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _too_deep(source, event.start_mark)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError as err:
        # libyaml 0.2.5+ stops at its own nesting limit (1000) before any event reaches us.
        if "nesting depth" in str(err) and MAX_DEPTH < LIBYAML_MAX_DEPTH:
            raise _too_deep(source, getattr(err, "problem_mark", None)) from None
        return  # the parse that follows words syntax errors best


LIBYAML_MAX_DEPTH = 1000  # the bundled libyaml of PyYAML 6.0.4 wheels: "exceeded maximum nesting depth"


def _too_deep(source: str, mark: Any) -> ProfileError:
    line = mark.line + 1 if mark is not None else "?"
    return ProfileError(
        f"{source}: nested more than {MAX_DEPTH} levels deep at line {line}; "
        "a profile needs a handful: check its brackets and indentation"
    )


def _parse_yaml(text: str) -> Any:
    import yaml

    # libyaml is quicker; the pure-Python parser words syntax errors best, so it reports them.
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.load(text, Loader=fast)
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


def validate_profile(data: Any, source: str) -> Profile:
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: a profile is a YAML mapping with at least `models:`; see profiles/default.yaml")
    try:
        return Profile.model_validate(data)
    except ValidationError as err:
        raise ProfileError(f"{source}: {_first_error(err)}") from None


def _first_error(err: ValidationError) -> str:
    """The most useful error, as ``key.path: message``."""
    errors = err.errors(include_url=False)
    # Tagged-union and Literal alternatives repeat one problem; the deepest location says most.
    first = max(errors, key=lambda e: len(e["loc"]))
    if any(e["type"] == "extra_forbidden" for e in errors):
        first = next(e for e in errors if e["type"] == "extra_forbidden")
    loc = ".".join(str(p) for p in first["loc"] if p not in ("hosted", "external") and not _is_union_tag(p))
    ctx_error = (first.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _LocatedError):
        loc = f"{loc}.{ctx_error.loc}".lstrip(".") if ctx_error.relative else ctx_error.loc
        message = str(ctx_error)
    elif first["type"] == "extra_forbidden":
        key = str(first["loc"][-1])
        loc = loc.rsplit(".", 1)[0] if "." in loc else ""
        import difflib

        guess = difflib.get_close_matches(key, _all_keys(), n=1)
        message = f"unknown key '{key}'" + (
            f": did you mean '{guess[0]}'?" if guess else ": remove it (see `albert-deploy schema`)"
        )
        return f"{loc}: {message}" if loc else message
    elif first["type"] == "missing":
        message = "required key is missing"
    elif first["type"] == "string_pattern_mismatch":
        message = _PATTERN_HINTS.get((first.get("ctx") or {}).get("pattern", ""), first["msg"])
    elif first["type"] == "too_short" and loc == "models":
        message = "list at least one model (an embeddings model is required)"
    elif first["type"] in _BOUND_WORDS:
        limit = next(iter((first.get("ctx") or {}).values()), "")
        message = f"{_as_yaml(first['input'])} {_BOUND_WORDS[first['type']]} {limit}"
    elif first["type"] == "int_type":
        message = f"{_as_yaml(first['input'])} is not a whole number: write the number without quotes"
    elif first["type"].startswith("value_error"):
        message = first["msg"].removeprefix("Value error, ")
    else:
        message = first["msg"]
    return f"{loc}: {message}" if loc else message


_BOUND_WORDS = {
    "less_than_equal": "is too large: at most",
    "greater_than_equal": "is too small: at least",
    "greater_than": "is too small: more than",
}


def _as_yaml(value: Any) -> str:
    # As the operator wrote it: `true`, not Python's `True`.
    return str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, str) else str(value)


_PATTERN_HINTS = {
    ENV_NAME_PATTERN: "must be an environment variable name: UPPER_CASE letters, digits and _",
    r"^[a-z0-9][a-z0-9_-]{0,62}$": "use lowercase letters, digits, '_' or '-' (at most 63), as Docker Compose requires",
    r"^GPU-[0-9a-fA-F-]+$": "a GPU UUID looks like GPU-3f2a…, as `nvidia-smi -L` prints it",
    r"^\d+\.\d+$": "write the compute capability as major.minor, e.g. '8.9'",
}


def _is_union_tag(part: Any) -> bool:
    # Pydantic names union members in locations, e.g. "list[Gpu]" or "literal['auto','cpu']".
    return isinstance(part, str) and ("[" in part or part in ("int", "str", "GpuPool", "Gpu"))


def _all_keys() -> list[str]:
    from albert_deploy.profile.kubernetes import Kubernetes, Toleration

    keys: set[str] = set()
    for model in (Profile, Api, HostedModel, ExternalModel, Gpu, GpuPool, Kubernetes, Toleration):
        keys.update(model.model_fields)
    return sorted(keys)


def profile_json_schema() -> dict[str, Any]:
    from pydantic import Field

    from albert_deploy.profile.kubernetes import Kubernetes

    class Documented(Profile):
        # Profile validates `kubernetes:` lazily (profile/model.py); its schema is the Kubernetes model's.
        __doc__ = Profile.__doc__
        kubernetes: Kubernetes = Field(default_factory=Kubernetes, description=KUBERNETES_DESCRIPTION)  # type: ignore[arg-type]

    schema = Documented.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "albert-deploy profile"
    return schema
