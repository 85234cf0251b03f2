"""Profile settings of the Kubernetes target (`render --target kubernetes`); compose ignores them."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from albert_deploy.profile.strict import Strict, _key

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_QUANTITY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


def _check_label_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    bad_prefix = bool(prefix) and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix))
    if bad_prefix or len(name) > 63 or not _LABEL_NAME.match(name):
        raise ValueError(f"'{key}' is not a Kubernetes label key: write it like node-pool or nvidia.com/gpu.product")


def _check_labels(value: dict[str, str]) -> dict[str, str]:
    for key, label in value.items():
        _check_label_key(key)
        if label and (len(label) > 63 or not _LABEL_NAME.match(label)):
            raise ValueError(
                f"'{label}' (for {key}) is not a Kubernetes label value: letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit (at most 63)"
            )
    return value


def _label_values_as_text(value: Any) -> Any:
    # YAML reads `gpu: true` as a boolean; a node selector compares text.
    if isinstance(value, dict):
        for key, label in value.items():
            if not isinstance(label, str):
                raise ValueError(f'the value of {key} must be text: quote it ({key}: "{str(label).lower()}")')
    return value


def _quantity_as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Quantity = Annotated[str, BeforeValidator(_quantity_as_text)]
NodeSelector = Annotated[dict[str, str], BeforeValidator(_label_values_as_text)]


class Toleration(Strict):
    """A pod toleration, spelled as in a Kubernetes pod spec."""

    key: str | None = Field(None, description="Taint key, e.g. nvidia.com/gpu; omitted with Exists: every taint.")
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Omitted: every effect."
    )
    # Kubernetes' own spelling, so that tolerations paste as they are.
    tolerationSeconds: int | None = Field(
        default=None,
        ge=0,
        le=2**63 - 1,
        strict=True,
        description="NoExecute only: seconds the pod stays on a node once it is tainted.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.key is not None:
            try:
                _check_label_key(self.key)
            except ValueError as err:
                raise _key("key", f"{err} (a taint key)") from None
        if self.operator == "Exists" and self.value:
            raise _key("value", "a toleration with operator Exists takes no value: remove it, or use operator: Equal")
        if self.operator == "Equal" and not self.key:
            raise _key(
                "key", "a toleration with operator Equal needs a key; use operator: Exists to tolerate every taint"
            )
        if self.tolerationSeconds is not None and self.effect != "NoExecute":
            raise _key("tolerationSeconds", "only tolerations with effect NoExecute take tolerationSeconds")
        return self


def _nvidia_taint() -> list[Toleration]:
    # The taint GPU node pools commonly carry (GKE, the NVIDIA GPU operator's docs); harmless where absent.
    return [Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]


class Kubernetes(Strict):
    """Settings of `render --target kubernetes`; the compose target ignores them."""

    namespace: str | None = Field(
        None, description="Namespace of every object. Default: the project, with '_' written '-'."
    )
    create_namespace: bool = Field(
        True,
        description="Write the Namespace object (in data/, which `kubectl delete -k DIR/app` never removes); false for an existing namespace.",
    )
    storage_class: str | None = Field(
        None, description="StorageClass of the model caches and database volumes. Default: the cluster's default."
    )
    cache_size: Quantity = Field("50Gi", description="Size of each model server's cache volume, e.g. 50Gi.")
    database_size: Quantity = Field("10Gi", description="Size of each database's volume, e.g. 10Gi.")
    node_selector: NodeSelector = Field(default_factory=dict, description="Node labels every pod requires.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Taints every pod tolerates.")
    gpu_node_selector: NodeSelector = Field(
        default_factory=dict,
        description="Node labels GPU pods also require, e.g. {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}.",
    )
    gpu_tolerations: list[Toleration] = Field(
        default_factory=_nvidia_taint,
        description="Taints GPU pods also tolerate. Default: nvidia.com/gpu (Exists, NoSchedule); [] for none.",
    )

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 63 or not _DNS_LABEL.match(value)):
            raise ValueError(
                f"'{value}' is not a Kubernetes namespace name: lowercase letters, digits and '-', "
                "starting and ending with a letter or digit (at most 63)"
            )
        return value

    @field_validator("storage_class")
    @classmethod
    def _storage_class(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 253 or not _DNS_SUBDOMAIN.match(value)):
            raise ValueError(f"'{value}' is not a StorageClass name: lowercase letters, digits, '-' and '.'")
        return value

    @field_validator("cache_size", "database_size")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not _QUANTITY.match(value) or not float(re.sub(r"[A-Za-z]+$", "", value)):
            raise ValueError(f"'{value}' is not a Kubernetes size: write it like 50Gi, 500Mi or 1Ti")
        return value

    @field_validator("node_selector", "gpu_node_selector")
    @classmethod
    def _selector(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_labels(value)
