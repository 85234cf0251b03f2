"""Bad profiles: each gets one clear line naming the file, the key and the fix, and exit code 1."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from albert_deploy.cli import cli

E5 = "  - model: intfloat/multilingual-e5-large\n"

BAD_PROFILES = {
    "unknown_key": (
        "models:\n  - modle: intfloat/multilingual-e5-large\n",
        "models.0: unknown key 'modle': did you mean 'model'?",
    ),
    "yaml_syntax": (
        "models:\n  - model: [unclosed\n",
        "invalid YAML at line 3, column 1: expected ',' or ']', but got '<stream end>'",
    ),
    "no_embeddings": (
        "models:\n  - model: AgentPublic/guillaumetell-7b\n    gpus: [0]\n",
        "the Albert API needs an embeddings model: add one of type text-embeddings-inference "
        "(e.g. `- model: intfloat/multilingual-e5-large`)",
    ),
    "llm_required_by_003": (
        'api:\n  release: "0.0.3"\nmodels:\n' + E5,
        "release 0.0.3 needs a text-generation model: add one (e.g. `- model: AgentPublic/guillaumetell-7b`) "
        "or an external endpoint",
    ),
    "unknown_model": (
        "models:\n" + E5 + "  - model: mistralai/Mistral-7B-Instruct-v0.3\n",
        "models.1: 'mistralai/Mistral-7B-Instruct-v0.3' is not in the catalog: give its `server` (vllm, tei, "
        "whisper) and `type`, or use one of: AgentPublic/guillaumetell-7b (text-generation), "
        "intfloat/multilingual-e5-large (text-embeddings-inference), BAAI/bge-reranker-v2-m3 (text-classification), "
        "openai/whisper-large-v3-turbo (automatic-speech-recognition)",
    ),
    "duplicate_names": (
        "models:\n" + E5 + E5,
        "models.1.name: 'multilingual-e5-large' is already the name of models.0: give each model a unique `name`",
    ),
    "tei_cannot_generate": (
        "models:\n" + E5 + "  - model: my/llm\n    type: text-generation\n    server: tei\n",
        "models.1.server: server 'tei' cannot serve text-generation: use vllm (or an external endpoint)",
    ),
    "whisper_cannot_embed": (
        "models:\n  - model: my/embedder\n    type: text-embeddings-inference\n    server: whisper\n",
        "models.0.server: server 'whisper' cannot serve text-embeddings-inference: use tei (or an external endpoint)",
    ),
    "rerank_needs_tei": (
        "models:\n" + E5 + "  - model: my/reranker\n    type: text-classification\n    server: vllm\n",
        "models.1.server: server 'vllm' cannot serve text-classification: use tei (or an external endpoint)",
    ),
    "port_clash": (
        "api:\n  port: 8080\nmodels:\n" + E5 + "    port: 8080\n",
        "models.0.port: host port 8080 is already used by api.port: choose another",
    ),
    "gpu_pinned_twice": (
        "models:\n" + E5 + "    gpus: [0]\n  - model: BAAI/bge-reranker-v2-m3\n    gpus: [0]\n",
        "models.1.gpus: GPU 0 is already given to 'multilingual-e5-large': pin another GPU, "
        "or set `share_gpus: true` to let models share it",
    ),
    "unknown_release": (
        'api:\n  release: "0.1.5"\nmodels:\n' + E5,
        "api.release: unknown release '0.1.5'; known releases: 0.0.3, 0.2.0",
    ),
    "release_as_float": (
        "api:\n  release: 0.2\nmodels:\n" + E5,
        "api.release: unknown release '0.2'; known releases: 0.0.3, 0.2.0",
    ),
    "unknown_vector_store": (
        "api:\n  vector_store: milvus\nmodels:\n" + E5,
        "api.vector_store: 'milvus' is not supported by release 0.2.0; use one of: qdrant, elasticsearch",
    ),
    "external_url_with_v1": (
        "models:\n"
        + E5
        + "  - name: llm\n    type: text-generation\n    url: https://llm.example.org/v1\n    model: x\n",
        "models.1.url: give the server root without /v1 (e.g. https://llm.example.org); "
        "albert-deploy adds /v1 where the release expects it",
    ),
    "reserved_name": (
        "models:\n" + E5 + "    name: redis\n",
        "models.0.name: 'redis' is reserved for the stack's own services (api, redis, postgres, qdrant, "
        "elasticsearch, front, playground): rename it",
    ),
    "name_with_spaces": (
        "models:\n" + E5 + '    name: "My Model"\n',
        "models.0.name: 'My Model' is not a valid name: use lowercase letters, digits, '.', '_' or '-' (at most 63)",
    ),
    "vllm_on_cpu": (
        "models:\n" + E5 + "  - model: AgentPublic/guillaumetell-7b\n    gpus: cpu\n",
        "models.1.gpus: vllm needs a GPU: give `gpus` a count or ids, or use an external endpoint",
    ),
    "bad_memory_size": (
        "gpus:\n  count: 1\n  memory: lots\nmodels:\n" + E5,
        "gpus.memory: 'lots' is not a size: write it as 24GB, 24GiB or 81559MiB",
    ),
    "not_a_mapping": (
        "- model: x\n",
        "a profile is a YAML mapping with at least `models:`; see profiles/default.yaml",
    ),
    "no_models": (
        "models: []\n",
        "models: list at least one model (an embeddings model is required)",
    ),
    "env_name": (
        "models:\n" + E5 + "    env:\n      lower-case: x\n",
        "models.0.env.lower-case: must be an environment variable name: UPPER_CASE letters, digits and _",
    ),
    "external_without_type": (
        "models:\n" + E5 + "  - name: llm\n    url: https://llm.example.org\n    model: x\n",
        "models.1.type: required key is missing",
    ),
    "bind_not_an_address": (
        "api:\n  bind: localhost\nmodels:\n" + E5,
        "api.bind: 'localhost' is not an IP address: use 127.0.0.1 (this host only) or 0.0.0.0",
    ),
    "bind_out_of_range": (
        "api:\n  bind: 256.0.0.1\nmodels:\n" + E5,
        "api.bind: '256.0.0.1' is not an IP address: use 127.0.0.1 (this host only) or 0.0.0.0",
    ),
    "tei_renamed": (
        "models:\n" + E5 + "    served_model_name: e5\n",
        "models.0.served_model_name: tei always reports the model id it loads: remove served_model_name",
    ),
    "project_name": (
        "project: My Plan\nmodels:\n" + E5,
        "project: use lowercase letters, digits, '_' or '-' (at most 63), as Docker Compose requires",
    ),
    "whisper_renamed": (
        "models:\n" + E5 + "  - model: openai/whisper-large-v3-turbo\n    gpus: [1]\n    served_model_name: whisper\n",
        "models.1.served_model_name: whisper always reports the model id it loads: remove served_model_name",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_PROFILES))
@pytest.mark.parametrize("command", ["validate", "render"])
def test_bad_profile_gets_one_clear_line(case: str, command: str, tmp_path: Path) -> None:
    text, message = BAD_PROFILES[case]
    profile = tmp_path / f"{case}.yaml"
    profile.write_text(text)
    out = tmp_path / "out"
    args = [command, str(profile)] + (["-o", str(out)] if command == "render" else [])
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: {profile}: {message}\n"
    assert result.stdout == ""
    assert not out.exists(), "nothing may be written when validation fails"


def test_missing_file_names_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"error: {tmp_path / 'nope.yaml'}: no such file; give the path of a profile (see profiles/ for examples)\n"
    )


def test_usage_error_exits_2() -> None:
    result = CliRunner().invoke(cli, ["render", "--no-such-option"])
    assert result.exit_code == 2
    assert "No such option" in result.stderr


def test_failed_render_leaves_previous_output_untouched(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    assert CliRunner().invoke(cli, ["render", "-o", str(out)]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("models:\n  - model: AgentPublic/guillaumetell-7b\n    gpus: [0]\n"))
    assert CliRunner().invoke(cli, ["render", str(bad), "-o", str(out)]).exit_code == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_placement_explains_what_cannot_fit(tmp_path: Path) -> None:
    profile = tmp_path / "t4.yaml"
    profile.write_text("gpus: {count: 1, name: Tesla T4}\nmodels:\n  - model: AgentPublic/guillaumetell-7b\n" + E5)
    for command in ("placement", "render", "validate"):
        result = CliRunner().invoke(cli, [command, str(profile)])
        assert result.exit_code == 1, command
        assert result.stderr == (
            f"error: {profile}: guillaumetell-7b needs 17.8 GB (weights 14.5 GB, KV cache 1.1 GB for one "
            "8192-token sequence, runtime and CUDA graphs 2.1 GB), the largest GPU has 16.1 GB (15.6 GB usable): "
            "add GPUs (it fits split over 2 × 16.1 GB), or use an external endpoint\n"
        )


def test_placement_json_for_the_default_profile() -> None:
    import json

    result = CliRunner().invoke(cli, ["placement", "--json"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    (gpu,) = report["gpus"]
    assert gpu["models"][0]["model"] == "guillaumetell-7b"
    assert gpu["used_bytes"] + gpu["free_bytes"] + gpu["reserved_bytes"] == gpu["total_bytes"]
    assert report["models"]["guillaumetell-7b"]["gpu_memory_utilization"] == 0.86
