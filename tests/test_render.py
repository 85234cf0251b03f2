"""render: golden output, every shipped profile for every release, checked by the real Compose v2."""

from __future__ import annotations

import os
import stat
import string
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from albert_deploy import commands
from albert_deploy.cli import cli
from albert_deploy.errors import RenderError
from albert_deploy.plan.build import build_plan
from albert_deploy.plan.releases import MODULES, r0_0_3, r0_2_0
from albert_deploy.profile.load import validate_profile
from albert_deploy.render.envfile import parse_env
from albert_deploy.render.files import render_plan

from .helpers import PROFILES, REPO, SAMPLES, compose_binary, compose_config, fixed_env

GOLDEN = REPO / "tests" / "golden" / "default"
GOLDEN_FILES = {
    "compose.yml": "compose.yml",
    "config.yml": "config.yml",
    ".env": "dotenv.txt",
    "RUNBOOK.md": "RUNBOOK.md",
}


def render_with_fixed_secrets(out: Path, profile: str | None = None) -> None:
    plan = commands.load(profile)
    out.mkdir(parents=True, exist_ok=True)
    (out / ".env").write_text(fixed_env(plan.secrets))
    commands.render(profile, out)


def test_default_profile_matches_golden_files(tmp_path: Path) -> None:
    render_with_fixed_secrets(tmp_path)
    for produced, golden in GOLDEN_FILES.items():
        text = (tmp_path / produced).read_text()
        if os.environ.get("UPDATE_GOLDEN"):
            GOLDEN.mkdir(parents=True, exist_ok=True)
            (GOLDEN / golden).write_text(text)
        assert text == (GOLDEN / golden).read_text(), f"{produced} differs from tests/golden/default/{golden}"


def test_render_without_arguments_writes_deploy_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["render"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in Path("deploy").iterdir()) == [".env", "RUNBOOK.md", "compose.yml", "config.yml"]
    assert "Rendered <embedded default profile> (Albert API 0.2.0)" in result.stdout


def profile_variants() -> list[tuple[Path, str, str]]:
    return [(p, release, store) for p in PROFILES for release in MODULES for store in ("qdrant", "elasticsearch")]


@pytest.mark.parametrize(("profile", "release", "store"), profile_variants(), ids=lambda v: getattr(v, "stem", v))
def test_every_profile_renders_for_every_release(profile: Path, release: str, store: str, tmp_path: Path) -> None:
    data = yaml.safe_load(profile.read_text())
    data.setdefault("api", {}).update(release=release, vector_store=store)
    plan = build_plan(validate_profile(data, str(profile)), str(profile))
    rendered = render_plan(plan)
    for name, text in rendered.files.items():
        (tmp_path / name).write_text(text)
    result = subprocess.run([compose_binary(), "-f", str(tmp_path / "compose.yml"), "config", "--quiet"],
                            capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(rendered.files["config.yml"])
    MODULES[release].validate_config(config)
    compose = compose_config(tmp_path)
    api = compose["services"]["api"]
    assert set(api["depends_on"]) == set(compose["services"]) - {"api"}
    assert all(d["condition"] == "service_healthy" for d in api["depends_on"].values())
    assert all("healthcheck" in s for s in compose["services"].values())
    assert (store in compose["services"]) and (({"qdrant", "elasticsearch"} - {store}).isdisjoint(compose["services"]))
    assert ("postgres" in compose["services"]) == (release == "0.2.0")


def test_release_formats_of_the_default_profile(tmp_path: Path) -> None:
    plan = commands.load(None)
    new = yaml.safe_load(render_plan(plan).files["config.yml"])
    assert {m["id"]: m["clients"][0]["type"] for m in new["models"]} == {
        "guillaumetell-7b": "vllm", "multilingual-e5-large": "tei",
        "whisper-large-v3-turbo": "openai", "bge-reranker-v2-m3": "tei",
    }  # fmt: skip
    assert all(not m["clients"][0]["args"]["api_url"].endswith("/v1") for m in new["models"])
    data = yaml.safe_load((REPO / "profiles" / "default.yaml").read_text())
    data["api"]["release"] = "0.0.3"
    old_stack = build_plan(validate_profile(data, "x"), "x")
    old = yaml.safe_load(render_plan(old_stack).files["config.yml"])
    assert [m["url"] for m in old["clients"]["models"]] == [
        "http://guillaumetell-7b:8000/v1", "http://multilingual-e5-large:80/v1",
        "http://whisper-large-v3-turbo:8000/v1", "http://bge-reranker-v2-m3:80/v1",
    ]  # fmt: skip
    assert old["internet"] == {
        "default_language_model": "AgentPublic/guillaumetell-7b",
        "default_embeddings_model": "intfloat/multilingual-e5-large",
    }
    assert old["models"]["aliases"]["AgentPublic/guillaumetell-7b"] == ["guillaumetell-7b"]


def test_served_names_equal_server_flags() -> None:
    plan = commands.load(None)
    by_name = {s.name: s for s in plan.services}
    for endpoint in plan.endpoints:
        command = by_name[endpoint.name].command
        flag = {"vllm": "--served-model-name", "tei": "--model-id", "openai": "--model"}[endpoint.client]
        assert command[command.index(flag) + 1] == endpoint.served_name


@pytest.mark.parametrize(
    ("module", "sample"),
    [(r0_2_0, "0.2.0-qdrant.yml"), (r0_2_0, "0.2.0-elasticsearch.yml"), (r0_0_3, "0.0.3.yml")],
)
def test_release_checks_accept_the_reference_samples(module: object, sample: str) -> None:
    module.validate_config(yaml.safe_load((SAMPLES / sample).read_text()))  # type: ignore[attr-defined]


BROKEN_020 = {
    "two redis": lambda c: c["databases"].append({"type": "redis", "args": {}}),
    "no sql": lambda c: c.__setitem__("databases", [d for d in c["databases"] if d["type"] != "sql"]),
    "store model not embeddings": lambda c: c["databases"][2].__setitem__("model", "llm"),
    "url with /v1": lambda c: c["models"][0]["clients"][0]["args"].__setitem__("api_url", "http://vllm:8000/v1"),
    "tei for text-generation": lambda c: c["models"][0]["clients"][0].__setitem__("type", "tei"),
    "duplicate ids": lambda c: c["models"][1].__setitem__("id", "llm"),
}


@pytest.mark.parametrize("breakage", sorted(BROKEN_020))
def test_release_020_check_refuses_broken_configs(breakage: str) -> None:
    config = yaml.safe_load((SAMPLES / "0.2.0-qdrant.yml").read_text())
    BROKEN_020[breakage](config)
    with pytest.raises(RenderError, match=r"does not match release 0\.2\.0"):
        r0_2_0.validate_config(config)


@pytest.mark.parametrize(
    "breakage",
    [
        lambda c: c["internet"].pop("default_embeddings_model"),
        lambda c: c["clients"]["models"][0].__setitem__("url", "http://vllm:8000"),
        lambda c: c["clients"]["databases"]["cache"]["args"].pop("port"),
        lambda c: c["clients"].__setitem__("models", c["clients"]["models"][1:]),
    ],
)
def test_release_003_check_refuses_broken_configs(breakage: object) -> None:
    config = yaml.safe_load((SAMPLES / "0.0.3.yml").read_text())
    breakage(config)  # type: ignore[operator]
    with pytest.raises(RenderError, match=r"does not match release 0\.0\.3"):
        r0_0_3.validate_config(config)


def test_same_profile_and_secrets_give_byte_identical_output(tmp_path: Path) -> None:
    render_with_fixed_secrets(tmp_path / "a")
    render_with_fixed_secrets(tmp_path / "b")
    for name in ("compose.yml", "config.yml", ".env", "RUNBOOK.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_secrets_are_generated_private_and_kept(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["render", "-o", str(tmp_path)])
    assert result.exit_code == 0
    env_file = tmp_path / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "config.yml").stat().st_mode) == 0o644
    first = parse_env(env_file.read_text())
    assert {"MASTER_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "QDRANT_API_KEY"} <= set(first)
    assert len(set(first.values())) == len(first), "every secret is different"
    for value in first.values():
        assert len(value) >= 32
        assert value not in result.output
        for name in ("compose.yml", "config.yml", "RUNBOOK.md"):
            assert value not in (tmp_path / name).read_text()
    # The operator adds a variable and loses one secret: the rest stays, the missing one is regenerated.
    text = env_file.read_text().replace(f"REDIS_PASSWORD={first['REDIS_PASSWORD']}\n", "") + "HF_TOKEN=hf_xyz\n"
    env_file.write_text(text)
    assert CliRunner().invoke(cli, ["render", "-o", str(tmp_path)]).exit_code == 0
    second = parse_env(env_file.read_text())
    assert second["HF_TOKEN"] == "hf_xyz"
    assert second["REDIS_PASSWORD"] != first["REDIS_PASSWORD"]
    assert {k: v for k, v in second.items() if k not in ("REDIS_PASSWORD", "HF_TOKEN")} == {
        k: v for k, v in first.items() if k != "REDIS_PASSWORD"
    }
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def test_compose_reads_secrets_from_env_file(tmp_path: Path) -> None:
    render_with_fixed_secrets(tmp_path)
    services = compose_config(tmp_path)["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "test-postgres-password"
    assert services["redis"]["environment"]["REDIS_ARGS"] == "--requirepass test-redis-password"
    assert services["api"]["environment"]["MASTER_KEY"] == "test-master-key"


def test_output_directory_with_foreign_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["render", "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {tmp_path}: holds files albert-deploy did not write (notes.txt); "
        "choose an empty directory or a previous render's with -o\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


HOSTILE = "a: b # c \"d\" 'e' {f} [g] $h ${i} $${j} \\k"


def hostile_profile(release: str, served: str = "org/model: #1 {x} [y] 'q' $z") -> dict[str, object]:
    return {
        "api": {"release": release},
        "models": [
            {"model": "intfloat/multilingual-e5-large", "gpus": "cpu"},
            {
                "model": "AgentPublic/guillaumetell-7b",
                "gpus": [0],
                "served_model_name": served,
                "env": {"HOSTILE": HOSTILE, "MULTILINE": "line one\nline two: [x]\n# not a comment"},
                "args": ["--note", HOSTILE],
            },
            {"name": "llm", "type": "text-generation", "url": "https://llm.example.org", "model": served},
        ],
    }


@pytest.mark.parametrize("release", ["0.2.0", "0.0.3"])
def test_hostile_strings_render_back_identical(release: str, tmp_path: Path) -> None:
    profile = validate_profile(hostile_profile(release), "hostile.yaml")
    plan = build_plan(profile, "hostile.yaml")
    rendered = render_plan(plan, fixed_env(plan.secrets))
    for name, text in rendered.files.items():
        (tmp_path / name).write_text(text)
    server = compose_config(tmp_path)["services"]["guillaumetell-7b"]
    assert server["environment"]["HOSTILE"] == HOSTILE
    assert server["environment"]["MULTILINE"] == "line one\nline two: [x]\n# not a comment"
    assert server["command"][-2:] == ["--note", HOSTILE]
    assert server["command"][server["command"].index("--served-model-name") + 1] == "org/model: #1 {x} [y] 'q' $z"
    config_text = rendered.files["config.yml"]
    if release == "0.0.3":
        # The container expands the file with string.Template: `$$` must come back as `$`.
        environment = dict.fromkeys(plan.secrets, "secret")
        config_text = string.Template(config_text).substitute(environment)
        assert yaml.safe_load(config_text)["internet"]["default_language_model"] == "org/model: #1 {x} [y] 'q' $z"
    else:
        assert yaml.safe_load(config_text)["models"][1]["clients"][0]["model"] == "org/model: #1 {x} [y] 'q' $z"


def test_substitution_syntax_is_refused_where_the_api_would_replace_it() -> None:
    from albert_deploy.errors import ProfileError

    profile = validate_profile(hostile_profile("0.2.0", served="org/${MASTER_KEY}"), "hostile.yaml")
    with pytest.raises(ProfileError) as err:
        build_plan(profile, "hostile.yaml")
    assert str(err.value) == (
        "hostile.yaml: models.1.served_model_name: '${' cannot appear in a value of the API config "
        "(release 0.2.0 would replace it): remove it"
    )


def test_newline_in_a_server_flag_is_refused() -> None:
    from albert_deploy.errors import ProfileError

    with pytest.raises(ProfileError, match=r"models\.1\.served_model_name: must be one printable line"):
        validate_profile(hostile_profile("0.2.0", served="two\nlines"), "hostile.yaml")


def test_schema_command_publishes_the_profile_format() -> None:
    import json

    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["additionalProperties"] is False
    assert {"project", "api", "gpus", "models"} <= set(schema["properties"])
    assert "HostedModel" in schema["$defs"] and "ExternalModel" in schema["$defs"]


def test_previous_output_is_kept_as_a_dated_backup(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    first = commands.render(None, out)
    assert first["change"] == "created"
    assert commands.render(None, out)["change"] == "unchanged"
    assert not (tmp_path / "deploy.backups").exists()
    old_compose = (out / "compose.yml").read_text()
    other = tmp_path / "p.yaml"
    other.write_text((REPO / "profiles" / "default.yaml").read_text().replace("port: 8080", "port: 8090"))
    assert commands.render(str(other), out)["change"] == "updated"
    (backup,) = (tmp_path / "deploy.backups").iterdir()
    assert (backup / "compose.yml").read_text() == old_compose
    assert stat.S_IMODE((tmp_path / "deploy.backups").stat().st_mode) == 0o700
    assert stat.S_IMODE((backup / ".env").stat().st_mode) == 0o600
    assert parse_env((backup / ".env").read_text()) == parse_env((out / ".env").read_text())


def test_vllm_loads_alone_and_its_neighbours_together() -> None:
    data = {
        "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3"}, {"index": 1, "name": "NVIDIA L4"}],
        "share_gpus": True,
        "models": [
            {"model": "intfloat/multilingual-e5-large", "gpus": [0]},
            {"model": "BAAI/bge-reranker-v2-m3", "gpus": [0]},
            {"model": "AgentPublic/guillaumetell-7b", "gpus": [0]},
            {"model": "openai/whisper-large-v3-turbo", "gpus": [1]},
            {"model": "intfloat/multilingual-e5-large", "name": "e5-cpu", "gpus": "cpu"},
        ],
    }
    plan = build_plan(validate_profile(data, "x"), "x")
    waits = {s.name: s.depends_on for s in plan.services if s.role == "model"}
    # vLLM alone first on GPU 0, then both TEI at once; GPU 1 and the CPU server start at once.
    assert waits == {
        "guillaumetell-7b": (),
        "bge-reranker-v2-m3": ("guillaumetell-7b",),
        "multilingual-e5-large": ("guillaumetell-7b",),
        "whisper-large-v3-turbo": (),
        "e5-cpu": (),
    }
    compose = yaml.safe_load(render_plan(plan).files["compose.yml"])
    assert compose["services"]["multilingual-e5-large"]["depends_on"] == {
        "guillaumetell-7b": {"condition": "service_healthy"}
    }


def test_offline_profile_keeps_servers_off_the_hub() -> None:
    data = yaml.safe_load((REPO / "profiles" / "default.yaml").read_text())
    data["offline"] = True
    plan = build_plan(validate_profile(data, "x"), "x")
    for service in plan.services:
        if service.role == "model":
            assert service.environment["HF_HUB_OFFLINE"] == "1"
    plain = build_plan(validate_profile({**data, "offline": False}, "x"), "x")
    assert all("HF_HUB_OFFLINE" not in s.environment for s in plain.services)


def test_runbook_says_what_runs_where_without_secrets(tmp_path: Path) -> None:
    render_with_fixed_secrets(tmp_path)
    runbook = (tmp_path / "RUNBOOK.md").read_text()
    assert "| guillaumetell-7b | model | AgentPublic/guillaumetell-7b | 0 |" in runbook
    assert "- GPU 0: guillaumetell-7b → " in runbook
    assert "http://127.0.0.1:8080" in runbook
    for value in parse_env((tmp_path / ".env").read_text()).values():
        assert value not in runbook


def test_published_schema_is_up_to_date() -> None:
    """docs/profile.schema.json is what editors validate profiles against: regenerate it with
    `albert-deploy schema > docs/profile.schema.json` when the profile format changes."""
    import json

    published = json.loads((REPO / "docs" / "profile.schema.json").read_text())
    assert published == json.loads(CliRunner().invoke(cli, ["schema"]).stdout)


def test_tei_on_a_gpu_too_old_for_it_runs_its_cpu_image_without_reserving_the_gpu() -> None:
    data = {
        "gpus": {"count": 1, "name": "Tesla V100-SXM2-32GB"},
        "models": [{"model": "intfloat/multilingual-e5-large"}, {"model": "AgentPublic/guillaumetell-7b"}],
    }
    services = {s.name: s for s in build_plan(validate_profile(data, "x"), "x").services}
    assert services["multilingual-e5-large"].image.endswith(":cpu-1.8.3")
    assert services["multilingual-e5-large"].gpu is None
    assert services["guillaumetell-7b"].gpu is not None and services["guillaumetell-7b"].gpu.device_ids == ("0",)
