"""Who can use the API: the release's authentication, and the refusal to publish an open API.

Albert API 0.0.3 authenticates only through a Grist back end (``clients.auth``, optional,
etalab-ia/albert-api@0.0.3:app/schemas/settings.py:84); the config albert-deploy renders has none,
so every key is accepted. 0.2.0 checks a Bearer key against ``auth.master_key`` and its users'
keys (etalab-ia/albert-api@0.2.0:app/helpers/_accesscontroller.py:141).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from albert_deploy.errors import ProfileError

# Release -> how it authenticates requests, or None when it lets anyone in.
AUTHENTICATION: dict[str, str | None] = {
    "0.0.3": None,
    "0.2.0": "Bearer key: the master key (MASTER_KEY in .env) or a user's key",
}
# The exact words a profile writes to publish an API without authentication beyond this host.
ACKNOWLEDGEMENT = "anyone who can reach the API can use it"
ACK_KEY = "allow_unauthenticated_access"


@dataclass(frozen=True)
class ApiAccess:
    """A typed fact of the plan: whether the API asks for a key, and who can reach it."""

    authentication: str | None  # None: the API has no authentication
    bind: str  # host address the API is published on (compose)
    acknowledged: bool  # the profile says, in the exact words, that an open API may be reachable

    @property
    def authenticated(self) -> bool:
        return self.authentication is not None

    @property
    def loopback_only(self) -> bool:
        return is_loopback(self.bind)

    def warning(self) -> str | None:
        """One line for `status` and RUNBOOK.md, or None when the API asks for a key."""
        if self.authenticated:
            return None
        where = "this host only (bound to loopback)" if self.loopback_only else f"every host that reaches {self.bind}"
        return f"The API has no authentication: any key, or none, is accepted; it is reachable from {where}."


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def api_access(release: str, bind: str, acknowledgement: str | None, source: str) -> ApiAccess:
    """Refuses an unauthenticated API published beyond loopback unless the profile says so in words."""
    if acknowledgement is not None and acknowledgement != ACKNOWLEDGEMENT:
        raise ProfileError(f'{source}: api.{ACK_KEY}: write exactly "{ACKNOWLEDGEMENT}", or remove the key')
    access = ApiAccess(AUTHENTICATION[release], bind, acknowledgement is not None)
    if not access.authenticated and not access.loopback_only and not access.acknowledged:
        raise ProfileError(
            f"{source}: api.bind: release {release} has no authentication, so anyone who reaches {bind} can use "
            f'the API; bind it to 127.0.0.1, or add under api: {ACK_KEY}: "{ACKNOWLEDGEMENT}"'
        )
    return access


def refuse_cluster_exposure(access: ApiAccess, release: str, source: str) -> None:
    """On Kubernetes the API's Service is reachable from every pod of the cluster, whatever ``bind`` says."""
    if not access.authenticated and not access.acknowledged:
        raise ProfileError(
            f"{source}: api.release: {release} has no authentication and its Kubernetes Service is reachable from "
            f'every pod of the cluster; use release 0.2.0, or add under api: {ACK_KEY}: "{ACKNOWLEDGEMENT}"'
        )
