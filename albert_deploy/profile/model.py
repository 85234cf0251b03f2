"""The profile: what an operator writes. Strict Pydantic models, then loading with clear errors.

Rules that need the catalog or the release table live here too, so that a profile that loads is
one that can be planned and rendered.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator, model_validator

from albert_deploy import catalog
from albert_deploy.catalog import RELEASES
from albert_deploy.profile import bounds
from albert_deploy.profile.api import Api
from albert_deploy.profile.bounds import ImageReference, Port, optional_int
from albert_deploy.profile.front import PLAYGROUND_PORT
from albert_deploy.profile.gpus import GpuInventory, declared_memory
from albert_deploy.profile.managed import check_key_variables, check_managed
from albert_deploy.profile.monitoring import Monitoring, check_monitoring, from_yaml
from albert_deploy.profile.strict import Strict, _at, _key
from albert_deploy.sizes import Size

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
STACK_SERVICES = ("api", "redis", "postgres", "qdrant", "elasticsearch")
FRONT_SERVICES = ("front", "playground")  # api.public's proxy, the playground UI
RESERVED_SERVICES = (*STACK_SERVICES, *FRONT_SERVICES)
# `images:` also names the image `pull` downloads models with, and the replicas' balancer's.
IMAGE_KEYS = (*STACK_SERVICES, "downloader", "balancer", *FRONT_SERVICES)


# --- Models -----------------------------------------------------------------------------------

# "auto": placement decides; "cpu" or 0: no GPU; N: any N GPUs; [ids]: these GPUs (index or UUID).
GpuRequest = Union[Literal["auto", "cpu"], Annotated[int, Field(ge=0, le=64, strict=True)], list[int | str]]


class HostedModel(Strict):
    """A model served by a container that albert-deploy runs."""

    model: str = Field(min_length=1, description="Hugging Face id, e.g. AgentPublic/guillaumetell-7b.")
    name: str | None = Field(
        None, description="Name clients use in the API (and the compose service). Default: from the model id."
    )
    type: catalog.ModelType | None = Field(None, description="Needed only for models outside the catalog.")
    server: catalog.ServerName | None = Field(
        None, description="vllm, tei or whisper; needed only outside the catalog."
    )
    gpus: GpuRequest = "auto"
    image: ImageReference | None = Field(None, description="Override the catalog's pinned image.")
    args: list[str] = Field(
        default_factory=list,
        description="Extra server arguments, appended. Flags albert-deploy sets (--port, --api-key, --model, "
        "…) are refused: the message names the key to use.",
    )
    env: dict[Annotated[str, Field(pattern=ENV_NAME_PATTERN)], str] = Field(
        default_factory=dict,
        description="Extra server variables. Variables albert-deploy sets (the API key, HF_TOKEN, HF_HOME, …) "
        "are refused.",
    )
    port: Port | None = Field(None, description="Publish the server on this host port (127.0.0.1).")
    served_model_name: str | None = Field(
        None, min_length=1, description="Id the server reports. Default: the model id."
    )
    max_model_len: int | None = optional_int(16, bounds.MAX_MODEL_LEN, "vLLM context length.")
    max_num_seqs: int | None = optional_int(
        1, bounds.MAX_NUM_SEQS, "vLLM concurrent sequences the KV cache is sized for."
    )
    memory: Size | None = Field(None, description="Override the weights' size estimate, e.g. 20GB.")
    health_start_period: int | None = optional_int(
        0, bounds.MAX_START_PERIOD_S, "Seconds allowed for loading before health counts."
    )
    replicas: int = Field(1, ge=1, le=bounds.MAX_REPLICAS, strict=True, description=(
        "Servers of this model, each placed like a model of its own and named NAME-1, NAME-2, …; above 1 a "
        "balancer named NAME fronts them and `up` replaces them one at a time."))  # fmt: skip

    @field_validator("served_model_name", "model")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and (not value.isprintable() or value != value.strip()):
            raise ValueError("must be one printable line without surrounding spaces")
        return value

    @field_validator("gpus", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        # YAML's `true` is not one GPU, nor GPU 1.
        if isinstance(value, bool) or (isinstance(value, list) and any(isinstance(v, bool) for v in value)):
            raise ValueError("true and false are not GPUs: give auto, cpu, a count or a list of GPU indexes or UUIDs")
        return value

    @field_validator("args")
    @classmethod
    def _args_one_line(cls, value: list[str]) -> list[str]:
        for arg in value:
            if "\n" in arg or "\r" in arg or "\x00" in arg:
                raise ValueError("server arguments cannot contain newlines")
        return value

    @model_validator(mode="after")
    def _resolve_catalog(self) -> HostedModel:
        known = catalog.MODELS.get(self.model)
        if known is None and (self.server is None or self.type is None):
            raise ValueError(
                f"'{self.model}' is not in the catalog: give its `server` (vllm, tei, whisper) and `type`, "
                f"or use one of: {catalog.catalog_listing()}"
            )
        server_name = self.server or (known.server if known else "")
        model_type = self.type or (known.type if known else "")
        server = catalog.SERVERS[server_name]
        if model_type not in server.serves:
            raise _key(
                "server" if self.server else "type",
                f"server '{server_name}' cannot serve {model_type}: use "
                + " or ".join(s.name for s in catalog.SERVERS.values() if model_type in s.serves)
                + " (or an external endpoint)",
            )
        if self.gpus in ("cpu", 0) and server.needs_gpu:
            raise _key("gpus", f"{server_name} needs a GPU: give `gpus` a count or ids, or use an external endpoint")
        if server_name in ("whisper", "tei") and self.served_model_name not in (None, self.model):
            # TEI 1.8 has no --served-model-name; whisper-openai-api reports its --model as is.
            raise _key(
                "served_model_name", f"{server_name} always reports the model id it loads: remove served_model_name"
            )
        derived = self.name or _derive_name(self.model)
        object.__setattr__(self, "name", derived)
        object.__setattr__(self, "server", server_name)
        object.__setattr__(self, "type", model_type)
        return self

    @property
    def known(self) -> catalog.KnownModel | None:
        return catalog.MODELS.get(self.model)

    @property
    def served_name(self) -> str:
        return self.served_model_name or self.model


class ExternalModel(Strict):
    """A model already served elsewhere: no container, only an entry in the API config."""

    name: str = Field(description="Name clients use in the API.")
    type: catalog.ModelType
    url: str = Field(pattern=r"^https?://[^\s/$.?#][^\s]*$", description="Server root, without /v1.")
    model: str = Field(min_length=1, description="Model id the server reports.")
    api_key_env: str | None = Field(None, pattern=ENV_NAME_PATTERN, description="Environment variable holding its key.")
    client: Literal["openai", "vllm", "tei", "albert"] | None = Field(
        None, description="API client type (0.1+ releases)."
    )

    @field_validator("url")
    @classmethod
    def _root_url(cls, value: str) -> str:
        if value.rstrip("/").endswith("/v1"):
            raise ValueError(
                f"give the server root without /v1 (e.g. {value.rstrip('/')[:-3]}); albert-deploy adds /v1 where the release expects it"
            )
        return value.rstrip("/")

    @field_validator("model")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be one printable line")
        return value

    served_name = property(lambda self: self.model)


def _model_kind(value: Any) -> str:
    return "external" if isinstance(value, dict) and "url" in value else "hosted"


ModelEntry = Annotated[
    Annotated[HostedModel, Tag("hosted")] | Annotated[ExternalModel, Tag("external")],
    Discriminator(_model_kind),
]


def _derive_name(model_id: str) -> str:
    base = model_id.rsplit("/", 1)[-1].lower()
    return re.sub(r"[^a-z0-9_.-]+", "-", base).strip("-._")[:63] or "model"


# --- Profile --------------------------------------------------------------------------------


class Profile(Strict):
    """An Albert API deployment: which models, where they run, and which API release fronts them."""

    project: str = Field("albert", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="Compose project name.")
    api: Api = Field(default_factory=Api)  # type: ignore[arg-type]
    gpus: GpuInventory | None = Field(None, description="The host's GPUs: a pool, a list, or 'auto' to detect them.")
    placement: Literal["pack", "spread"] = Field("pack", description="pack: as few GPUs as possible; spread: balance.")
    share_gpus: bool = Field(False, description="Allow two models to pin the same GPU id.")
    gpu_keep_free: Size = Field(
        Size(0),
        json_schema_extra={"minimum": 0},  # Size refuses negative values itself
        description="Memory left free on every GPU for processes outside this stack, e.g. 4GB.",
    )
    images: dict[Literal[IMAGE_KEYS], ImageReference] = Field(  # type: ignore[valid-type]
        default_factory=dict,
        description="Override the image of the API or a database, e.g. for a registry mirror; `downloader`: the "
        "image `albert-deploy pull` runs the Hugging Face download in (needs python3 and huggingface_hub); "
        "`balancer`: the nginx image in front of a model's replicas; `front`: api.public's Caddy; `playground`: the UI.",
    )
    offline: bool = Field(
        False, description="Air-gapped host: model servers never reach the Hugging Face Hub (HF_HUB_OFFLINE=1)."
    )
    health_interval: int = Field(
        10, ge=1, le=bounds.MAX_INTERVAL_S, strict=True, description="Seconds between health checks of every service."
    )
    # A Kubernetes object, or None when absent: validated on its own, so that other commands never build
    # the Kubernetes models. The schema names its type (profile/load.py: profile_json_schema).
    kubernetes: bounds.LazyKubernetes = Field(None, description=bounds.KUBERNETES_DESCRIPTION)
    monitoring: Annotated[Monitoring | None, BeforeValidator(from_yaml)] = Field(
        None, description="Prometheus and Grafana for the stack (off unless present): see the README's Monitoring."
    )
    playground: bool = Field(
        False,
        description="Run the release's playground UI (Streamlit): behind api.public at /playground, else on "
        f"{{api.bind}}:{PLAYGROUND_PORT}.",
    )
    models: list[ModelEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _cross_checks(self) -> Profile:
        names: dict[str, int] = {}
        for i, entry in enumerate(self.models):
            name = entry.name or ""
            if not re.fullmatch(NAME_PATTERN, name):
                raise _at(
                    i,
                    "name",
                    f"'{name}' is not a valid name: use lowercase letters, digits, '.', '_' or '-' (at most 63)",
                )
            if name in RESERVED_SERVICES:
                raise _at(
                    i,
                    "name",
                    f"'{name}' is reserved for the stack's own services ({', '.join(RESERVED_SERVICES)}): rename it",
                )
            if name in names:
                raise _at(
                    i, "name", f"'{name}' is already the name of models.{names[name]}: give each model a unique `name`"
                )
            names[name] = i
        bounds.check_replica_names(
            [(i, m.name or "", getattr(m, "replicas", 1)) for i, m in enumerate(self.models)], names
        )
        if not any(m.type == catalog.EMBEDDINGS for m in self.models):
            raise ValueError(
                "the Albert API needs an embeddings model: add one of type text-embeddings-inference "
                "(e.g. `- model: intfloat/multilingual-e5-large`)"
            )
        release = RELEASES[self.api.release]
        if release.requires_text_generation and not any(m.type == catalog.TEXT_GENERATION for m in self.models):
            raise ValueError(
                f"release {self.api.release} needs a text-generation model: add one "
                "(e.g. `- model: AgentPublic/guillaumetell-7b`) or an external endpoint"
            )
        check_monitoring(self.monitoring, names, self._check_ports())
        self._check_pins()
        self._check_hosted()
        return self

    def _check_hosted(self) -> None:
        hosted = [(i, m) for i, m in enumerate(self.models) if isinstance(m, HostedModel)]
        for i, m in hosted:
            check_managed(i, m.server or "", m.name or "", m.args, m.env)
        check_key_variables([(i, m.name or "") for i, m in hosted])
        bounds.check_keep_free(self.gpu_keep_free, declared_memory(self.gpus))

    def _check_ports(self) -> dict[int, str]:
        taken = self.api.host_ports(self.playground)
        for i, entry in enumerate(self.models):
            port = getattr(entry, "port", None)
            if port is None:
                continue
            if port in taken:
                raise _at(i, "port", f"host port {port} is already used by {taken[port]}: choose another")
            taken[port] = f"models.{i}.port"
        return taken

    def _check_pins(self) -> None:
        # Pins shared between models are checked once, by the placement (which knows index from UUID).
        for i, entry in enumerate(self.models):
            pins = getattr(entry, "gpus", None)
            if isinstance(pins, list) and len(set(map(str, pins))) != len(pins):
                raise _at(i, "gpus", "a GPU id is listed twice: list each GPU once")

    @property
    def hosted(self) -> list[HostedModel]:
        return [m for m in self.models if isinstance(m, HostedModel)]
