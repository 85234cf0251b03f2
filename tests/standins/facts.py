"""Facts about the real Albert API releases that the API stand-in applies, each with its source.

Every rule the stand-in (albert_api.py) applies to a config comes from this table, and
tests/test_release_facts.py checks that the release checks in albert_deploy/plan/releases/ agree
with it. A source names the upstream repository and tag, the file and the line the fact was read
from. Standard library only: the file is copied into the stand-in image next to albert_api.py.
"""

from __future__ import annotations

from typing import NamedTuple

REPO = "etalab-ia/albert-api"


class Fact(NamedTuple):
    value: object
    source: str


def _at(tag: str, where: str) -> str:
    return f"{REPO}@{tag} {where}"


TEXT_GENERATION, EMBEDDINGS = "text-generation", "text-embeddings-inference"
SPEECH, RERANK, VISION = "automatic-speech-recognition", "text-classification", "image-text-to-text"

FACTS: dict[str, Fact] = {
    # ------------------------------------------------------------ 0.0.3
    "0.0.3 search types": Fact(
        ("elastic", "qdrant"),
        _at(
            "0.0.3",
            "app/schemas/settings.py:64 (Literal[SEARCH_CLIENT_ELASTIC_TYPE, SEARCH_CLIENT_QDRANT_TYPE]); "
            'app/utils/variables.py:28-29 ("elastic", "qdrant")',
        ),
    ),
    "0.0.3 cache types": Fact(("redis",), _at("0.0.3", 'app/schemas/settings.py:69 (Literal["redis"])')),
    "0.0.3 model types": Fact(
        (SPEECH, EMBEDDINGS, TEXT_GENERATION, RERANK),
        _at("0.0.3", "app/schemas/settings.py:59; app/utils/variables.py:12-15"),
    ),
    "0.0.3 required model types": Fact(
        (TEXT_GENERATION, EMBEDDINGS), _at("0.0.3", "app/schemas/settings.py:94-102 (validate_models)")
    ),
    "0.0.3 required internet defaults": Fact(
        ("default_language_model", "default_embeddings_model"), _at("0.0.3", "app/schemas/settings.py:31-32, 109")
    ),
    "0.0.3 substitutes variables": Fact(
        False, _at("0.0.3", "app/schemas/settings.py:129-146 (yaml.safe_load, no re.sub)")
    ),
    "0.0.3 user": Fact(1100, _at("0.0.3", "app/Dockerfile:4-5 (useradd --uid 1100 albert; USER albert)")),
    "0.0.3 workdir": Fact("/home/albert", _at("0.0.3", "app/Dockerfile:8")),
    # ------------------------------------------------------------ 0.2.0
    "0.2.0 database types": Fact(
        ("qdrant", "elasticsearch", "redis", "sql"), _at("0.2.0", "app/schemas/core/settings.py:29-33 (DatabaseType)")
    ),
    "0.2.0 vector store types": Fact(("qdrant", "elasticsearch"), _at("0.2.0", "app/schemas/core/settings.py:303-309")),
    "0.2.0 redis databases": Fact(1, _at("0.2.0", "app/schemas/core/settings.py:301")),
    "0.2.0 sql databases with context api": Fact(1, _at("0.2.0", "app/schemas/core/settings.py:311-315")),
    "0.2.0 default database context": Fact("api", _at("0.2.0", "app/schemas/core/settings.py:201")),
    "0.2.0 sql url prefixes": Fact(("postgresql", "sqlite"), _at("0.2.0", "app/schemas/core/settings.py:184")),
    "0.2.0 vector store model type": Fact(EMBEDDINGS, _at("0.2.0", "app/schemas/core/settings.py:370")),
    "0.2.0 client types by model type": Fact(
        {
            SPEECH: ("albert", "openai"),
            VISION: ("albert", "openai", "vllm"),
            EMBEDDINGS: ("albert", "openai", "tei"),
            TEXT_GENERATION: ("albert", "openai", "vllm"),
            RERANK: ("albert", "tei"),
        },
        _at("0.2.0", "app/schemas/core/models.py:16-24 (ModelClientType.get_supported_clients)"),
    ),
    "0.2.0 unique model ids": Fact(True, _at("0.2.0", "app/schemas/core/settings.py:293")),
    # Comments included: the whole file text is searched before YAML parsing.
    "0.2.0 variable pattern": Fact(r"\$\{[A-Z0-9_]*\}", _at("0.2.0", "app/schemas/core/settings.py:350")),
    "0.2.0 warns on unset or empty variable": Fact(
        "Environment variable {name} not found or empty to replace {match}.",
        _at("0.2.0", "app/schemas/core/settings.py:352-353"),
    ),
    "0.2.0 monitoring keys": Fact(
        ("prometheus", "postgres", "sentry"), _at("0.2.0", "app/schemas/core/settings.py:238-241")
    ),
    # Absent means off: usage is written only when monitoring.postgres.enabled, /metrics only
    # when monitoring.prometheus.enabled.
    "0.2.0 usage logged when": Fact(("postgres", "enabled"), _at("0.2.0", "app/utils/hooks_decorator.py:206")),
    "0.2.0 metrics served when": Fact(("prometheus", "enabled"), _at("0.2.0", "app/factory.py:143-145")),
    "0.2.0 metrics path": Fact("/metrics", _at("0.2.0", "app/factory.py:145 (Instrumentator().expose default)")),
    "0.2.0 user": Fact(1100, _at("0.2.0", "app/Dockerfile:31, 44 (useradd --uid 1100 albert; USER albert)")),
    "0.2.0 workdir": Fact("/", _at("0.2.0", "app/Dockerfile:45")),
    "0.2.0 default config file": Fact(
        "config.yml", _at("0.2.0", "app/schemas/core/settings.py:336 (relative to WORKDIR /)")
    ),
}


def value(name: str) -> object:
    return FACTS[name].value
