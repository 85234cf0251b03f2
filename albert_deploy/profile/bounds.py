"""The bounds of a profile's numbers and references: what their consumers (Docker, Compose v2,
Kubernetes, vLLM) accept, so that a profile that loads renders a stack that can start."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PlainValidator

from albert_deploy.profile.strict import _LocatedError
from albert_deploy.sizes import Size

# Strict: YAML's `true` is not the number 1 (`port: true` would publish port 1).
Port = Annotated[int, Field(ge=1, le=65535, strict=True)]


def _host_address(value: str) -> str:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        raise ValueError(f"'{value}' is not an IP address: use 127.0.0.1 (this host only) or 0.0.0.0") from None
    return value


def _ipv4_address(value: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(
            f"'{value}' is not an IPv4 address: use 0.0.0.0 (every interface) or one of this host's"
        ) from None
    return value


# A host address a published port binds to (IPv6 with or without brackets); Ipv4Address where only IPv4 is rendered.
HostAddress = Annotated[str, AfterValidator(_host_address)]
Ipv4Address = Annotated[str, AfterValidator(_ipv4_address)]
# Compose v2 reads durations as Go's time.Duration (at most about 292 years) and Kubernetes gives
# the startup probe ceil(start_period / interval) + retries failures, an int32. A day is far inside
# both and far beyond any model load.
MAX_START_PERIOD_S = 86400
MAX_INTERVAL_S = 300
# vLLM refuses max_num_seqs above max_num_batched_tokens (SchedulerConfig._verify_args,
# vllm/config/scheduler.py), which albert-deploy leaves at vLLM's default: a sanity bound.
MAX_NUM_SEQS = 16384
# No model today has a context above ten million tokens: a bound on typos.
MAX_MODEL_LEN = 2**24
# Replicas of one model: each is a server with its own GPU budget; a bound on typos.
MAX_REPLICAS = 16


def optional_int(ge: int, le: int, description: str) -> Any:
    """An optional whole number within [ge, le]; booleans and quoted numbers refused."""
    return Field(None, ge=ge, le=le, strict=True, description=description)


# The Docker reference grammar (distribution/reference, reference.go): [domain/]path[:tag][@digest].
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"({_NAME})(?::{_TAG})?(?:@{_DIGEST})?")
_PATH = re.compile(rf"{_PATH_PART}(?:/{_PATH_PART})*")
_NAME_MAX = 255


def _image_reference(value: str) -> str:
    match = _REFERENCE.fullmatch(value)
    name = match.group(1) if match else ""
    first, slash, rest = name.partition("/")
    # The first component is a registry only if it has '.' or ':' or is localhost; else it is lowercase.
    registry = slash and ("." in first or ":" in first or first == "localhost")
    if not match or len(name) > _NAME_MAX or not _PATH.fullmatch(rest if registry else name):
        raise ValueError(
            f"'{value}' is not an image reference: write it as [registry/]name[:tag][@sha256:digest], "
            "in lowercase, e.g. vllm/vllm-openai:v0.11.0"
        )
    return value


ImageReference = Annotated[str, Field(min_length=1), AfterValidator(_image_reference)]


def check_keep_free(keep: Size, gpus: list[tuple[str, Size]]) -> None:
    """``gpu_keep_free`` must leave room on the smallest declared GPU."""
    if not gpus or not keep:
        return
    label, smallest = min(gpus, key=lambda g: g[1])
    if keep >= smallest:
        raise _LocatedError(
            "gpu_keep_free",
            f"{keep.gb()} is as much as {label}'s {smallest.gb()} or more: keep free less than the GPU's memory",
        )


def positive_memory(value: Size) -> Size:
    if value <= 0:
        raise ValueError("a GPU has memory: give its total as nvidia-smi prints it, e.g. 81559MiB")
    return value


def check_replica_names(models: list[tuple[int, str, int]], names: dict[str, int]) -> None:
    """``models``: (index, name, replicas). A replica is named NAME-K on the stack's network (a DNS
    label: at most 63 characters), which no other model may be named."""
    from albert_deploy.profile.strict import _at

    for i, name, replicas in models:
        if replicas < 2:
            continue
        last = f"{name}-{replicas}"
        if len(last) > 63:
            raise _at(i, "name", f"'{last}' (its last replica) is longer than 63 characters: shorten `name`")
        for k in range(1, replicas + 1):
            taken = names.get(f"{name}-{k}")
            if taken is not None:
                raise _at(i, "replicas", f"its replica '{name}-{k}' has the name of models.{taken}: rename one")


KUBERNETES_DESCRIPTION = "Namespace, storage, node selectors and tolerations for `render --target kubernetes`."


def _kubernetes(value: Any) -> Any:
    from albert_deploy.profile.kubernetes import Kubernetes

    return value if isinstance(value, Kubernetes) else Kubernetes.model_validate(value)


# The `kubernetes:` settings, validated on their own when present (None when absent): other commands
# never build the Kubernetes models.
LazyKubernetes = Annotated[Any, PlainValidator(_kubernetes)]
