"""`monitoring:` in the profile: Prometheus, Grafana and (on GPU hosts) dcgm-exporter, off by default.

``monitoring: true`` or an empty mapping turns it on with the defaults below; ``enabled: false``
keeps the section but renders nothing."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from albert_deploy.profile.bounds import HostAddress, ImageReference, Port
from albert_deploy.profile.strict import Strict, _LocatedError

# Compose services monitoring adds: no model may take these names.
SERVICE_NAMES = ("prometheus", "grafana", "dcgm-exporter")


class Listener(Strict):
    """A monitoring web UI published on the host."""

    enabled: bool = Field(True, description="false: do not run it (e.g. Grafana: you import the dashboards yourself).")
    bind: HostAddress = Field("127.0.0.1", description="Host address its port binds to (default: this host only).")
    port: Port = Field(description="Host port.")
    image: ImageReference | None = Field(None, description="Override the pinned image, e.g. for a registry mirror.")


class Monitoring(Strict):
    """Metrics of every model server and of the API, scraped by Prometheus and shown by Grafana."""

    enabled: bool = Field(True, description="Monitoring is on once this section is present; false turns it off.")
    scrape_interval: int = Field(
        15, ge=1, le=3600, strict=True, description="Seconds between two scrapes of every target."
    )
    prometheus: Listener = Field(
        default_factory=lambda: Listener.model_validate({"port": 9090}),
        description="Prometheus: bind, port (default 9090), image.",
    )
    grafana: Listener = Field(
        default_factory=lambda: Listener.model_validate({"port": 3000}),
        description="Grafana: bind, port (default 3000), image; `enabled: false` writes its files but runs none.",
    )
    dcgm: Literal["auto"] | Annotated[bool, Field(strict=True)] = Field(
        "auto",
        description="NVIDIA dcgm-exporter for GPU memory: auto (only when models run on GPUs), true (required), "
        "false (never). Needs the NVIDIA container runtime.",
    )
    dcgm_image: ImageReference | None = Field(None, description="Override dcgm-exporter's pinned image.")

    @model_validator(mode="before")
    @classmethod
    def _defaults_per_listener(cls, data: Any) -> Any:
        # `prometheus: {bind: 0.0.0.0}` keeps its default port.
        if isinstance(data, dict):
            for key, port in (("prometheus", 9090), ("grafana", 3000)):
                if isinstance(data.get(key), dict) and "port" not in data[key]:
                    data = {**data, key: {**data[key], "port": port}}
        return data


def from_yaml(value: Any) -> Any:
    """``monitoring: true`` is ``{}``, ``false`` is ``{enabled: false}``, nothing is None (off)."""
    if isinstance(value, bool):
        return {"enabled": value}
    return value


def check_monitoring(monitoring: Monitoring | None, names: dict[str, int], taken: dict[int, str]) -> None:
    """Model names and host ports the monitoring services would clash with."""
    if monitoring is None or not monitoring.enabled:
        return
    for name, index in names.items():
        if name in SERVICE_NAMES:
            raise _LocatedError(
                f"models.{index}.name", f"'{name}' is the name of a monitoring service ({', '.join(SERVICE_NAMES)}): "
                "rename the model",
            )  # fmt: skip
    for key in ("prometheus", "grafana"):
        listener: Listener = getattr(monitoring, key)
        if listener.enabled and listener.port in taken:
            raise _LocatedError(
                f"monitoring.{key}.port", f"host port {listener.port} is already used by {taken[listener.port]}: "
                "choose another",
            )  # fmt: skip
        if listener.enabled:
            taken[listener.port] = f"monitoring.{key}.port"
