"""How the Albert API stand-in reads and validates a config: every rule comes from facts.py.

Pure functions (no network), so tests can set them beside the release checks in
albert_deploy/plan/releases/ and check that both accept and refuse the same configs.
Standard library only (runs inside the stand-in image).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from facts import EMBEDDINGS, value


class ConfigRefused(ValueError):
    """The real release would refuse this config at startup (pydantic or an assert)."""


def _require(condition: object, message: str) -> None:
    if not condition:
        raise ConfigRefused(message)


def substitute(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """0.2.0's ${NAME} rule over the whole text, comments included: (new text, warnings logged).
    Unset stays literal; set-but-empty becomes empty; both log the release's warning."""
    warnings = []
    for match in sorted(set(re.findall(str(value("0.2.0 variable pattern")), text))):
        name = match[2:-1]
        if not env.get(name):
            warnings.append(str(value("0.2.0 warns on unset or empty variable")).format(name=name, match=match))
        text = text.replace(match, env.get(name, match))
    return text, warnings


def validate_0_0_3(cfg: Mapping) -> None:
    """The release's pydantic rules (settings.py at 0.0.3) that albert-deploy's output touches."""
    internet = cfg.get("internet") or {}
    for key in value("0.0.3 required internet defaults"):  # type: ignore[attr-defined]
        _require(isinstance(internet.get(key), str), f"internet.{key}: Field required")
    clients = cfg.get("clients") or {}
    models = clients.get("models") or []
    _require(models, "clients.models: List should have at least 1 item")
    for m in models:
        _require(m.get("type") in value("0.0.3 model types"), f"clients.models.type: unexpected value {m.get('type')}")  # type: ignore[operator]
    types = {m.get("type") for m in models}
    for needed in value("0.0.3 required model types"):  # type: ignore[attr-defined]
        _require(needed in types, f"At least one {needed} model is required")
    dbs = clients.get("databases") or {}
    cache, search = dbs.get("cache") or {}, dbs.get("search") or {}
    _require(cache.get("type", "redis") in value("0.0.3 cache types"), f"cache.type: unexpected {cache.get('type')}")  # type: ignore[operator]
    _require(
        search.get("type", "qdrant") in value("0.0.3 search types"),  # type: ignore[operator]
        f"clients.databases.search.type: Input should be 'elastic' or 'qdrant', got {search.get('type')!r}",
    )


def validate_0_2_0(cfg: Mapping) -> None:
    """The release's pydantic rules (core/settings.py at 0.2.0) that albert-deploy's output touches."""
    dbs = cfg.get("databases") or []
    for d in dbs:
        _require(d.get("type") in value("0.2.0 database types"), f"databases.type: unexpected {d.get('type')}")  # type: ignore[operator]
    context = value("0.2.0 default database context")
    redis = [d for d in dbs if d.get("type") == "redis"]
    sql = [d for d in dbs if d.get("type") == "sql" and d.get("context", context) == "api"]
    stores = [d for d in dbs if d.get("type") in value("0.2.0 vector store types")]  # type: ignore[operator]
    _require(len(redis) == value("0.2.0 redis databases"), "There must be only one redis database.")
    _require(len(sql) == value("0.2.0 sql databases with context api"), "There must be one SQL database (context api).")
    _require(
        str((sql[0].get("args") or {}).get("url", "")).startswith(value("0.2.0 sql url prefixes")),  # type: ignore[arg-type]
        "databases.sql.args.url: String should match pattern '^postgresql|^sqlite'",
    )
    _require(len(stores) <= 1, "Only one vector database (Qdrant or Elasticsearch) is allowed.")
    models = cfg.get("models") or []
    _require(models, "models: List should have at least 1 item")
    ids = [m.get("id") for m in models]
    _require(len(ids) == len(set(ids)), "Duplicated models name found.")
    supported: dict = value("0.2.0 client types by model type")  # type: ignore[assignment]
    for m in models:
        clients = m.get("clients") or []
        _require(clients, f"model {m.get('id')}: clients: Field required")
        _require(
            clients[0].get("type") in supported.get(m.get("type"), ()),
            f"Invalid model type: {m.get('type')} for client type {clients[0].get('type')}",
        )
    embeddings = {m.get("id") for m in models if m.get("type") == value("0.2.0 vector store model type")}
    if stores:
        _require(
            stores[0].get("model") in embeddings,
            f"Vector store model is not defined in models section with type {EMBEDDINGS}.",
        )
    monitoring = cfg.get("monitoring") or {}
    for key, section in monitoring.items():
        _require(key in value("0.2.0 monitoring keys"), f"monitoring.{key}: not a monitoring of this release")  # type: ignore[operator]
        _require(isinstance(section, dict) and isinstance(section.get("enabled", True), bool),
                 f"monitoring.{key}.enabled: Input should be a valid boolean")  # fmt: skip


def monitoring_on(cfg: Mapping, fact: str) -> bool:
    """Whether a monitoring feature is on: present, and enabled (its default) -- absent means off."""
    key, flag = value(fact)  # type: ignore[misc]
    section = (cfg.get("monitoring") or {}).get(key)
    return isinstance(section, dict) and section.get(flag, True) is True
