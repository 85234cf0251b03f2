"""Profiles that would render a stack that cannot work (issue #9, section 4) are refused with one line
naming the key at fault and the key to use instead; numbers keep to what their consumers accept."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from albert_deploy.cli import cli
from albert_deploy.errors import ProfileError
from albert_deploy.plan.servers import key_ref
from albert_deploy.profile import load
from albert_deploy.profile.bounds import MAX_START_PERIOD_S
from albert_deploy.profile.load import validate_profile
from albert_deploy.profile.managed import MANAGED_ENV, MANAGED_FLAGS, key_variable
from tests.helpers import compose_config

E5 = "  - model: intfloat/multilingual-e5-large\n"
LLM = "  - model: AgentPublic/guillaumetell-7b\n    gpus: [0]\n"
H100 = "gpus: {count: 1, name: NVIDIA H100 80GB HBM3}\n"
KEY = "MODEL_GUILLAUMETELL_7B_KEY"

BAD_PROFILES = {
    "port_flag": (
        "models:\n" + E5 + LLM + '    args: ["--port", "9000"]\n',
        "models.1.args: --port is managed by albert-deploy: use models.1.port to publish a port",
    ),
    "api_key_flag_with_equals": (
        "models:\n" + E5 + LLM + '    args: ["--api-key=secret"]\n',
        f"models.1.args: --api-key is managed by albert-deploy: the key is {KEY} in .env, which albert-deploy "
        "generates",
    ),
    "api_key_env": (
        "models:\n" + E5 + LLM + "    env: {VLLM_API_KEY: secret}\n",
        f"models.1.env.VLLM_API_KEY: VLLM_API_KEY is managed by albert-deploy: the key is {KEY} in .env, which "
        "albert-deploy generates",
    ),
    "served_model_name_flag": (
        "models:\n" + E5 + LLM + '    args: ["--served-model-name", "other"]\n',
        "models.1.args: --served-model-name is managed by albert-deploy: use models.1.served_model_name",
    ),
    "underscore_flag": (
        "models:\n" + E5 + LLM + '    args: ["--max_model_len", "4096"]\n',
        "models.1.args: --max-model-len is managed by albert-deploy: use models.1.max_model_len",
    ),
    "hf_home_env": (
        "models:\n" + E5 + "    env: {HF_HOME: /tmp/hf}\n",
        "models.0.env.HF_HOME: HF_HOME is managed by albert-deploy: albert-deploy mounts the model cache as the "
        "volume multilingual-e5-large-cache; `albert-deploy pull` fills it",
    ),
    "offline_env": (
        "models:\n" + E5 + "    env: {HF_HUB_OFFLINE: '1'}\n",
        "models.0.env.HF_HUB_OFFLINE: HF_HUB_OFFLINE is managed by albert-deploy: use `offline: true`",
    ),
    "start_period_overflows": (
        "models:\n" + E5 + LLM + "    health_start_period: 10000000000\n",
        "models.1.health_start_period: 10000000000 is too large: at most 86400",
    ),
    "interval_is_a_boolean": (
        "health_interval: true\nmodels:\n" + E5,
        "health_interval: true is not a whole number: write the number without quotes",
    ),
    "port_true": (
        "models:\n" + E5 + "    port: true\n",
        "models.0.port: true is not a whole number: write the number without quotes",
    ),
    "api_port_out_of_range": (
        "api:\n  port: 70000\nmodels:\n" + E5,
        "api.port: 70000 is too large: at most 65535",
    ),
    "gpu_count_true": (
        "models:\n" + E5 + "    gpus: true\n",
        "models.0.gpus: true and false are not GPUs: give auto, cpu, a count or a list of GPU indexes or UUIDs",
    ),
    "gpu_pin_true": (
        "models:\n" + E5 + "    gpus: [0, true]\n",
        "models.0.gpus: true and false are not GPUs: give auto, cpu, a count or a list of GPU indexes or UUIDs",
    ),
    "toleration_seconds_true": (
        "kubernetes:\n  tolerations: [{key: k, operator: Exists, effect: NoExecute, tolerationSeconds: true}]\n"
        "models:\n" + E5,
        "kubernetes.tolerations.0.tolerationSeconds: true is not a whole number: write the number without quotes",
    ),
    "image_with_spaces": (
        "models:\n" + E5 + "    image: not a valid image\n",
        "models.0.image: 'not a valid image' is not an image reference: write it as "
        "[registry/]name[:tag][@sha256:digest], in lowercase, e.g. vllm/vllm-openai:v0.11.0",
    ),
    "stack_image_upper_case": (
        "images: {api: Albert/API}\nmodels:\n" + E5,
        "images.api: 'Albert/API' is not an image reference: write it as [registry/]name[:tag][@sha256:digest], "
        "in lowercase, e.g. vllm/vllm-openai:v0.11.0",
    ),
    "names_share_a_key_variable": (
        "models:\n" + E5 + "    name: a-b\n  - model: BAAI/bge-reranker-v2-m3\n    name: a_b\n",
        "models.1.name: 'a_b' and 'a-b' (models.0) would both read their API key from MODEL_A_B_KEY: rename one "
        "(names that differ only in '-', '_' or '.' share a variable)",
    ),
    "gpu_without_memory": (
        "gpus: {count: 1, memory: 0GB}\nmodels:\n" + E5,
        "gpus.memory: a GPU has memory: give its total as nvidia-smi prints it, e.g. 81559MiB",
    ),
    "listed_gpu_without_memory": (
        "gpus: [{index: 0, memory: 0}]\nmodels:\n" + E5,
        "gpus.0.memory: a GPU has memory: give its total as nvidia-smi prints it, e.g. 81559MiB",
    ),
    "keep_free_above_the_gpu": (
        H100 + "gpu_keep_free: 1000GB\nmodels:\n" + E5 + LLM,
        "gpu_keep_free: 1000.0 GB is as much as each GPU's 85.5 GB or more: keep free less than the GPU's memory",
    ),
    "keep_free_leaves_too_little": (
        "gpus: {count: 1, name: NVIDIA L4}\ngpu_keep_free: 20GB\nmodels:\n" + E5 + LLM,
        "gpu_keep_free: 20.0 GB kept free leaves 3.6 GB usable on GPU 0 (NVIDIA L4) (24.2 GB), and "
        "guillaumetell-7b needs 17.7 GB: keep less free, or use a larger GPU",
    ),
    "keep_free_leaves_too_little_unpinned": (
        "gpus: {count: 1, name: NVIDIA L4}\ngpu_keep_free: 20GB\nmodels:\n"
        + E5
        + "  - model: AgentPublic/guillaumetell-7b\n",
        "gpu_keep_free: 20.0 GB kept free leaves 3.6 GB usable on GPU 0 (NVIDIA L4) (24.2 GB), and "
        "guillaumetell-7b needs 17.7 GB: keep less free, or use a larger GPU",
    ),
    "keep_free_infinite": (
        "gpu_keep_free: .inf\nmodels:\n" + E5,
        "gpu_keep_free: inf is more bytes than Docker and Kubernetes can hold: give a real size",
    ),
    "keep_free_nan": (
        "gpu_keep_free: .nan\nmodels:\n" + E5,
        "gpu_keep_free: nan is not a size: write it as 24GB, 24GiB or 81559MiB",
    ),
    "memory_past_a_float": (
        "models:\n" + E5 + "    memory: " + "9" * 400 + "GB\n",
        f"models.0.memory: {'9' * 400}GB is more bytes than Docker and Kubernetes can hold: give a real size",
    ),
    "tp_short_flag": (
        "models:\n" + E5 + LLM + '    args: ["-tp=2"]\n',
        "models.1.args: -tp is managed by albert-deploy: use models.1.gpus (a count or a list of GPUs)",
    ),
    "max_num_seqs_beyond_bound": (
        H100 + "models:\n" + E5 + LLM + "    max_num_seqs: 1000000000\n",
        "models.1.max_num_seqs: 1000000000 is too large: at most 16384",
    ),
    "max_num_seqs_beyond_the_gpu": (
        H100 + "models:\n" + E5 + LLM + "    max_num_seqs: 16384\n",
        "models.1.max_num_seqs: guillaumetell-7b needs 8813.1 GB on GPU 0 (NVIDIA H100 80GB HBM3), which has "
        "85.5 GB (84.7 GB usable): lower max_num_seqs, add a larger GPU, or use an external endpoint",
    ),
    "max_num_seqs_beyond_any_gpu": (
        H100 + "models:\n" + E5 + "  - model: AgentPublic/guillaumetell-7b\n    max_num_seqs: 16384\n",
        "models.1.max_num_seqs: guillaumetell-7b needs 8813.1 GB (weights 14.5 GB, KV cache 8796.1 GB for "
        "max_num_seqs 16384 sequences, runtime and CUDA graphs 2.1 GB), the largest GPU has 85.5 GB (84.7 GB "
        "usable): lower max_num_seqs, add a larger GPU, or use an external endpoint",
    ),
    "nested_brackets": (
        "[" * 4096,
        "nested more than 32 levels deep at line 1; a profile needs a handful: check its brackets and indentation",
    ),
    "nested_mapping_values": (
        "models: " + "[" * 2000 + "]" * 2000 + "\n",
        "nested more than 32 levels deep at line 1; a profile needs a handful: check its brackets and indentation",
    ),
}


def _validate(path: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["validate", str(path)])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("case", sorted(BAD_PROFILES))
def test_unworkable_profile_gets_one_line_naming_the_key(case: str, tmp_path: Path) -> None:
    text, message = BAD_PROFILES[case]
    profile = tmp_path / f"{case}.yaml"
    profile.write_text(text)
    assert _validate(profile) == (1, "", f"error: {profile}: {message}\n")


def test_validate_dev_zero_stops_at_the_size_bound() -> None:
    code, out, err = _validate(Path("/dev/zero"))
    assert (code, out) == (1, "")
    assert err == (
        "error: /dev/zero: larger than 1 MiB; a profile is a few kilobytes: give the path of a profile "
        "(see profiles/ for examples)\n"
    )


def test_a_profile_just_under_the_size_bound_is_read(tmp_path: Path) -> None:
    profile = tmp_path / "padded.yaml"
    body = "models:\n" + E5
    profile.write_text(body + "#" * (load.MAX_PROFILE_BYTES - len(body) - 1) + "\n")
    assert _validate(profile)[0] == 0
    profile.write_text(body + "#" * (load.MAX_PROFILE_BYTES - len(body)) + "\n")
    assert "larger than 1 MiB" in _validate(profile)[2]


def test_recursion_is_caught_as_a_last_resort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "MAX_DEPTH", 10**6)
    profile = tmp_path / "deep.yaml"
    profile.write_text("[" * 4096)
    assert _validate(profile) == (1, "", f"error: {profile}: nested too deeply for a profile\n")


def test_depth_bound_leaves_syntax_errors_to_the_parser(tmp_path: Path) -> None:
    profile = tmp_path / "bad.yaml"
    profile.write_text("models:\n  - model: [unclosed\n")
    assert "invalid YAML at line 3, column 1: expected ',' or ']'" in _validate(profile)[2]


@pytest.mark.parametrize("server", sorted(MANAGED_FLAGS))
def test_every_managed_flag_and_variable_is_refused_in_both_forms(server: str) -> None:
    model = {
        "vllm": {"model": "AgentPublic/guillaumetell-7b", "gpus": [0]},
        "tei": {"model": "intfloat/multilingual-e5-large"},
        "whisper": {"model": "openai/whisper-large-v3-turbo", "gpus": [0]},
    }[server]
    base = {"models": [{"model": "BAAI/bge-reranker-v2-m3", "type": "text-embeddings-inference"}]}
    for flag in MANAGED_FLAGS[server]:
        for args in ([flag, "x"], [f"{flag}=x"]):
            data = {"models": [*base["models"], {**model, "args": ["--seed", "1", *args]}]}
            with pytest.raises(ProfileError, match=f"models.1.args: {flag} is managed by albert-deploy: "):
                validate_profile(data, "p.yaml")
    for variable in MANAGED_ENV[server]:
        data = {"models": [*base["models"], {**model, "env": {variable: "x"}}]}
        with pytest.raises(ProfileError, match=f"models.1.env.{variable}: {variable} is managed by albert-deploy"):
            validate_profile(data, "p.yaml")


def test_unmanaged_args_and_env_still_pass() -> None:
    data = {
        "models": [
            {
                "model": "intfloat/multilingual-e5-large",
                "args": ["--max-client-batch-size", "64", "--port-x=1"],
                "env": {"RUST_LOG": "info"},
            }
        ]
    }
    model = validate_profile(data, "p.yaml").hosted[0]
    assert model.args == ["--max-client-batch-size", "64", "--port-x=1"]


def test_the_profile_and_the_plan_name_the_same_key_variable() -> None:
    for name in ("a-b", "a_b", "e5.large_v2", "guillaumetell-7b"):
        assert key_ref(name).name == key_variable(name)


@pytest.mark.parametrize(
    "image",
    [
        "vllm/vllm-openai:v0.11.0",
        "redis",
        "localhost:5000/mirror/vllm:v0.11.0",
        "Registry.Example.org:443/team/app@sha256:" + "a" * 64,
        "ghcr.io/etalab-ia/albert-api/app:0.2.0",
    ],
)
def test_valid_image_references_are_kept(image: str) -> None:
    data = {"models": [{"model": "intfloat/multilingual-e5-large", "image": image}], "images": {"api": image}}
    assert validate_profile(data, "p.yaml").hosted[0].image == image


@pytest.mark.parametrize("image", ["UPPER", "a//b", "x:", ":tag", "x@sha256:beef", "-a", "a:b:c", "x" * 256])
def test_invalid_image_references_are_refused(image: str) -> None:
    with pytest.raises(ProfileError, match="is not an image reference"):
        validate_profile({"models": [{"model": "intfloat/multilingual-e5-large", "image": image}]}, "p.yaml")


def test_the_longest_start_period_renders_for_compose_and_kubernetes(tmp_path: Path) -> None:
    profile = tmp_path / "slow.yaml"
    profile.write_text(f"health_interval: 1\nmodels:\n{E5}    health_start_period: {MAX_START_PERIOD_S}\n")
    compose, kubernetes = tmp_path / "compose", tmp_path / "k8s"
    assert CliRunner().invoke(cli, ["render", str(profile), "-o", str(compose)]).exit_code == 0
    health = compose_config(compose)["services"]["multilingual-e5-large"]["healthcheck"]
    assert health["start_period"] == "24h0m0s"  # Compose v2 reads it as a Go duration
    result = CliRunner().invoke(cli, ["render", str(profile), "--target", "kubernetes", "-o", str(kubernetes)])
    assert result.exit_code == 0, result.output
    thresholds = [
        probe["failureThreshold"]
        for path in kubernetes.rglob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") in ("Deployment", "StatefulSet")
        for c in doc["spec"]["template"]["spec"]["containers"]
        for probe in [c.get("startupProbe") or {}]
        if probe
    ]
    assert max(thresholds) == MAX_START_PERIOD_S + 5  # start period over a 1 s interval, plus the retries
    assert max(thresholds) < 2**31
