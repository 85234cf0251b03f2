"""The release checks (albert_deploy/plan/releases/) and the API stand-in agree with recorded facts.

tests/standins/facts.py records what the real Albert API releases accept, each fact with its
source; tests/standins/api_config.py is how the stand-in applies them. Here both are set beside
the release checks on the same configs, and the defects of issue #9 each have a test.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from albert_deploy.errors import RenderError
from albert_deploy.plan.build import build_plan
from albert_deploy.plan.releases import MODULES, r0_0_3, r0_2_0
from albert_deploy.profile.load import validate_profile
from albert_deploy.render.envfile import parse_env
from albert_deploy.render.files import render_plan

from .helpers import PROFILES, REPO, SAMPLES, fixed_env

STANDINS = Path(__file__).resolve().parent / "standins"
sys.path.insert(0, str(STANDINS))  # the stand-in modules import each other flat, as in their image
import api_config  # noqa: E402
import facts  # noqa: E402

STORES = ("qdrant", "elasticsearch")
STANDIN_RULES: dict[str, Callable[[Any], None]] = {
    "0.0.3": api_config.validate_0_0_3,
    "0.2.0": api_config.validate_0_2_0,
}


def verdicts(release: str, config: dict[str, Any]) -> tuple[bool, bool]:
    """(release check accepts, stand-in accepts)."""
    try:
        MODULES[release].validate_config(copy.deepcopy(config))
        ours = True
    except RenderError:
        ours = False
    try:
        STANDIN_RULES[release](copy.deepcopy(config))
        theirs = True
    except api_config.ConfigRefused:
        theirs = False
    return ours, theirs


def sample(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((SAMPLES / name).read_text()))


def rendered(
    release: str, store: str, profile: Path = REPO / "profiles" / "default.yaml"
) -> tuple[str, dict[str, str]]:
    """(config.yml text, the .env the API would get) for one profile, release and store."""
    data = yaml.safe_load(profile.read_text())
    data.setdefault("api", {}).update(release=release, vector_store=store)
    plan = build_plan(validate_profile(data, str(profile)), str(profile))
    return render_plan(plan).files["config.yml"], parse_env(fixed_env(plan.secrets))


# ---------------------------------------------------------------- the facts themselves
SOURCE = re.compile(r"^etalab-ia/albert-api@\d+\.\d+\.\d+ [\w/.-]+\.(py|yml|sh|\w*file):\d+")


@pytest.mark.parametrize("name", sorted(facts.FACTS))
def test_every_fact_cites_a_tag_a_file_and_a_line(name: str) -> None:
    fact = facts.FACTS[name]
    assert SOURCE.match(fact.source) or SOURCE.match(fact.source.replace("Dockerfile", "Dockerfile.py")), fact.source
    assert name.split()[0] in fact.source, f"{name}: the fact is about {name.split()[0]}, its source is {fact.source}"


def test_the_api_image_runs_as_the_user_and_in_the_directory_of_the_facts() -> None:
    spec = importlib.util.spec_from_file_location("standins_build_for_facts", STANDINS / "build.py")
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    tail = build._specs()["albert-api"]["tail"]
    assert f"USER {facts.value('0.2.0 user')}\n" in tail and facts.value("0.0.3 user") == facts.value("0.2.0 user")
    # One image serves both releases: its WORKDIR is 0.0.3's; 0.2.0 reads /config.yml by absolute path.
    assert f"WORKDIR {facts.value('0.0.3 workdir')}\n" in tail
    assert facts.value("0.2.0 workdir") + str(facts.value("0.2.0 default config file")) == r0_2_0.RELEASE.config_mount


# ---------------------------------------------------------------- agreement, value by value
@pytest.mark.parametrize("search", ["elastic", "qdrant", "elasticsearch", "Elastic", "redis"])
def test_0_0_3_search_types_agree(search: str) -> None:
    config = sample("0.0.3.yml")
    config["clients"]["databases"]["search"]["type"] = search
    expected = search in facts.value("0.0.3 search types")  # type: ignore[operator]
    assert verdicts("0.0.3", config) == (expected, expected)


@pytest.mark.parametrize("dropped", [facts.TEXT_GENERATION, facts.EMBEDDINGS, facts.SPEECH])
def test_0_0_3_required_model_types_agree(dropped: str) -> None:
    config = sample("0.0.3.yml")
    config["clients"]["models"] = [m for m in config["clients"]["models"] if m["type"] != dropped]
    expected = dropped not in facts.value("0.0.3 required model types")  # type: ignore[operator]
    assert verdicts("0.0.3", config) == (expected, expected)


CLIENT_TYPES: dict[str, tuple[str, ...]] = facts.value("0.2.0 client types by model type")  # type: ignore[assignment]
MODEL_CLIENT_PAIRS = [(m, c) for m in CLIENT_TYPES for c in ("albert", "openai", "tei", "vllm", "whisper")]


@pytest.mark.parametrize(("model_type", "client_type"), MODEL_CLIENT_PAIRS)
def test_0_2_0_client_types_agree(model_type: str, client_type: str) -> None:
    config = sample("0.2.0-qdrant.yml")
    config["models"].append(
        {
            "id": "extra",
            "type": model_type,
            "clients": [{"model": "m", "type": client_type, "args": {"api_url": "http://x:1"}}],
        }
    )
    expected = client_type in CLIENT_TYPES[model_type]
    assert verdicts("0.2.0", config) == (expected, expected)
    assert r0_2_0.CLIENT_TYPES.get(model_type) is None or set(r0_2_0.CLIENT_TYPES[model_type]) == set(
        CLIENT_TYPES[model_type]
    )


DATABASE_CHANGES = {
    "second redis": (lambda c: c["databases"].append(copy.deepcopy(c["databases"][0])), False),
    "no sql": (lambda c: c["databases"].pop(1), False),
    "sql in another context too": (lambda c: c["databases"].append({**c["databases"][1], "context": "other"}), True),
    "sql without a context": (lambda c: c["databases"][1].pop("context"), True),
    "mysql url": (lambda c: c["databases"][1]["args"].update(url="mysql://x"), False),
    "store model is the llm": (lambda c: c["databases"][2].update(model="llm"), False),
    "store model is speech": (lambda c: c["databases"][2].update(model="speech"), False),
    "unknown database type": (lambda c: c["databases"].append({"type": "mongodb", "args": {}}), False),
    "duplicated model id": (lambda c: c["models"][1].update(id="llm"), False),
}


@pytest.mark.parametrize("change", sorted(DATABASE_CHANGES))
@pytest.mark.parametrize("store", STORES)
def test_0_2_0_database_rules_agree(change: str, store: str) -> None:
    config = sample(f"0.2.0-{store}.yml")
    edit, expected = DATABASE_CHANGES[change]
    edit(config)
    assert verdicts("0.2.0", config) == (expected, expected)


@pytest.mark.parametrize("name", ["0.0.3.yml", "0.0.3-elastic.yml", "0.2.0-qdrant.yml", "0.2.0-elasticsearch.yml"])
def test_the_test_samples_pass_both(name: str) -> None:
    assert verdicts(name[:5], sample(name)) == (True, True)


# ---------------------------------------------------------------- the defects of issue #9
@pytest.mark.parametrize(
    ("profile", "release", "store"),
    [(p, r, s) for p in PROFILES for r in MODULES for s in STORES],
    ids=lambda v: getattr(v, "stem", v),
)
def test_every_rendered_config_starts_the_stand_in(profile: Path, release: str, store: str) -> None:
    """Defect: 0.0.3 with Elasticsearch rendered `type: elasticsearch`, which 0.0.3 refuses."""
    text, env = rendered(release, store, profile)
    if release == "0.2.0":
        text, _ = api_config.substitute(text, env)
    STANDIN_RULES[release](yaml.safe_load(text))


def test_0_0_3_with_elasticsearch_names_it_elastic() -> None:
    config = yaml.safe_load(rendered("0.0.3", "elasticsearch")[0])
    assert config["clients"]["databases"]["search"]["type"] == "elastic"
    assert facts.value("0.0.3 search types") == r0_0_3.SEARCH_TYPES


@pytest.mark.parametrize("store", STORES)
def test_0_2_0_start_logs_no_variable_warning(store: str) -> None:
    """Defect: a `${NAME}` in a comment of config.yml made every 0.2.0 start log a warning."""
    text, env = rendered("0.2.0", store)
    _, warnings = api_config.substitute(text, env)
    assert warnings == []


def test_0_2_0_records_usage_and_serves_metrics() -> None:
    """Defect: without `monitoring`, 0.2.0 writes no usage row and serves no /metrics."""
    config = yaml.safe_load(rendered("0.2.0", "qdrant")[0])
    assert api_config.monitoring_on(config, "0.2.0 usage logged when")
    assert api_config.monitoring_on(config, "0.2.0 metrics served when")
    assert set(config["monitoring"]) <= set(facts.value("0.2.0 monitoring keys"))  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["postgres", "prometheus"])
def test_0_2_0_check_refuses_a_config_without_monitoring(key: str) -> None:
    config = sample("0.2.0-qdrant.yml")
    config["monitoring"][key]["enabled"] = False
    with pytest.raises(RenderError, match=rf"monitoring\.{key}\.enabled must be true"):
        r0_2_0.validate_config(config)
    del config["monitoring"]
    with pytest.raises(RenderError, match="monitoring is missing"):
        r0_2_0.validate_config(config)
    assert not api_config.monitoring_on(config, "0.2.0 usage logged when")  # absent means off
