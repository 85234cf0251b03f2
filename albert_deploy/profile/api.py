"""The profile's `api:` section: the Albert API release and how it is published."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from albert_deploy.catalog import RELEASES
from albert_deploy.profile.bounds import HostAddress, Port
from albert_deploy.profile.front import PLAYGROUND_PORT, Public, refuse_direct_publishing
from albert_deploy.profile.strict import Strict, _key


def _release_as_text(value: Any) -> Any:
    # YAML reads `release: 0.2` as a float; keep it as written so the message can name it.
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


class Api(Strict):
    release: Annotated[str, BeforeValidator(_release_as_text)] = Field("0.2.0", description="Albert API release.")
    port: Port = Field(8080, description="Host port the API is published on.")
    bind: HostAddress = Field(
        "127.0.0.1", description="Host address the API port binds to; 0.0.0.0 for every interface."
    )
    vector_store: str = Field("qdrant", description="qdrant, or elasticsearch where the release supports it.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    allow_unauthenticated_access: str | None = Field(
        None,
        description="Release 0.0.3 has no authentication: to publish it beyond 127.0.0.1 (or on Kubernetes), "
        'write exactly "anyone who can reach the API can use it".',
    )
    public: Public | None = Field(
        None,
        description="Publish the API over HTTPS through a front door (Caddy); the API then binds only inside the stack.",
    )

    @field_validator("release")
    @classmethod
    def _known_release(cls, value: str) -> str:
        if value not in RELEASES:
            raise ValueError(f"unknown release '{value}'; known releases: {', '.join(RELEASES)}")
        return value

    @model_validator(mode="after")
    def _known_store(self) -> Api:
        stores = RELEASES[self.release].vector_stores
        if self.vector_store not in stores:
            raise _key(
                "vector_store",
                f"'{self.vector_store}' is not supported by release {self.release}; use one of: {', '.join(stores)}",
            )
        refuse_direct_publishing(self.model_fields_set, self.public)
        return self

    def host_ports(self, playground: bool = False) -> dict[int, str]:
        """Host ports the API publishes (and the playground beside it, without a front door), by key."""
        if self.public:
            return self.public.host_ports()
        if playground and self.port == PLAYGROUND_PORT:
            raise _key("playground", f"the playground publishes port {PLAYGROUND_PORT}, which api.port uses: change it")
        return {self.port: "api.port", **({PLAYGROUND_PORT: "playground"} if playground else {})}
