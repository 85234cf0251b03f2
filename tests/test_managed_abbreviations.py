"""A managed flag cannot come in through `args` in another spelling the server reads as that flag.

vLLM's and whisper-openai-api's parsers are argparse's with ``allow_abbrev`` left on, so `--serv x`
is `--served-model-name x` there; TEI's clap reads whole flags only, but takes `-p` for --port and
the deprecated --hf-api-token for --hf-token (facts "<server> abbreviations", "tei port short flag",
"tei token alias" in tests/standins/facts.py). albert-deploy refuses each, naming the profile key to
use; the stand-ins read the same spellings as the real servers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from albert_deploy.cli import cli
from albert_deploy.errors import ProfileError
from albert_deploy.profile.load import validate_profile
from albert_deploy.profile.managed import ABBREVIATES, MANAGED_ENV, MANAGED_FLAGS

STANDINS = Path(__file__).resolve().parent / "standins"
sys.path.insert(0, str(STANDINS))  # the stand-in modules import each other flat, as in their image
import facts  # noqa: E402
import model_server  # noqa: E402

F = facts.server_value
MODEL = {
    "vllm": {"model": "AgentPublic/guillaumetell-7b", "gpus": [0]},
    "tei": {"model": "intfloat/multilingual-e5-large"},
    "whisper": {"model": "openai/whisper-large-v3-turbo", "gpus": [0]},
}
EMBEDDER = {"model": "BAAI/bge-reranker-v2-m3", "type": "text-embeddings-inference"}


def _refusal(server: str, args: list[str]) -> str:
    data = {"models": [EMBEDDER, {**MODEL[server], "args": ["--seed", "1", *args]}]}  # found after another flag
    with pytest.raises(ProfileError) as err:
        validate_profile(data, "p.yaml")
    return str(err.value)


def _accepted(server: str, args: list[str]) -> None:
    validate_profile({"models": [EMBEDDER, {**MODEL[server], "args": args}]}, "p.yaml")


@pytest.mark.parametrize("server", sorted(MANAGED_FLAGS))
def test_albert_deploy_knows_which_parsers_abbreviate_as_the_facts_say(server: str) -> None:
    assert ABBREVIATES[server] is F(f"{server} abbreviations"), facts.SERVER_FACTS[f"{server} abbreviations"].source


@pytest.mark.parametrize(
    ("server", "args", "message"),
    [
        ("vllm", ["--serv", "other"], "--serv abbreviates --served-model-name, which albert-deploy manages "
         "(vllm reads an unambiguous prefix of a flag as the flag): use models.1.served_model_name"),
        ("vllm", ["--api-k=x"], "--api-k abbreviates --api-key, which albert-deploy manages (vllm reads an "
         "unambiguous prefix of a flag as the flag): the key is MODEL_GUILLAUMETELL_7B_KEY in .env"),
        ("vllm", ["--served_mod", "x"], "--served-mod abbreviates --served-model-name"),  # FlexibleArgumentParser's _
        ("vllm", ["--por", "9000"], "--por abbreviates --port, which albert-deploy manages (vllm reads an unambiguous "
         "prefix of a flag as the flag): use models.1.port to publish a port"),
        ("vllm", ["-t", "2"], "-t abbreviates -tp, which albert-deploy manages"),
        ("vllm", ["--max"], "--max abbreviates --max-model-len or --max-num-seqs, which albert-deploy manages "
         "(vllm reads an unambiguous prefix of a flag as the flag): --max-model-len: use models.1.max_model_len; "
         "--max-num-seqs: use models.1.max_num_seqs"),
        ("whisper", ["--mod", "x"], "--mod abbreviates --model, which albert-deploy manages (whisper reads an "
         "unambiguous prefix of a flag as the flag): use models.1.model"),
        ("whisper", ["--hf=x"], "--hf abbreviates --hf-token, which albert-deploy manages"),
        ("tei", ["-p", "9000"], "-p is managed by albert-deploy: use models.1.port to publish a port"),
        ("tei", ["-p=9000"], "-p is managed by albert-deploy: use models.1.port"),
        ("tei", ["-p9000"], "-p is managed by albert-deploy: use models.1.port"),
        ("tei", ["--hf-api-token", "x"], "--hf-api-token is managed by albert-deploy: set HF_TOKEN in .env "
         "(--hf-api-token is the deprecated --hf-token)"),
    ],
)  # fmt: skip
def test_another_spelling_of_a_managed_flag_is_refused_with_the_key_to_use(
    server: str, args: list[str], message: str
) -> None:
    assert _refusal(server, args).startswith(f"p.yaml: models.1.args: {message}")


def test_tei_refuses_the_deprecated_token_variable_too() -> None:
    data = {"models": [EMBEDDER, {**MODEL["tei"], "env": {"HF_API_TOKEN": "x"}}]}
    with pytest.raises(ProfileError, match=r"models.1.env.HF_API_TOKEN: HF_API_TOKEN is managed by albert-deploy: set "
                       r"HF_TOKEN in .env \(HF_API_TOKEN is the deprecated HF_TOKEN\)"):  # fmt: skip
        validate_profile(data, "p.yaml")


def test_the_tei_spellings_albert_deploy_refuses_are_the_facts() -> None:
    assert str(F("tei port short flag")) in MANAGED_FLAGS["tei"]
    assert str(F("tei token alias")) in MANAGED_FLAGS["tei"]
    assert "HF_API_TOKEN" in MANAGED_ENV["tei"]


@pytest.mark.parametrize(
    ("server", "args"),
    [
        ("vllm", ["--model-impl", "vllm", "--max-num-batched-tokens", "8192", "--seed=1", "--enable-prefix-caching"]),
        ("tei", ["--por", "1", "--hf", "x", "--payload-limit", "9"]),  # clap: no abbreviation, nothing managed
        ("whisper", ["--debug", "--reload", "--root-path", "/x", "--force-download"]),
    ],
)
def test_unmanaged_flags_and_whole_flags_of_parsers_without_abbreviation_pass(server: str, args: list[str]) -> None:
    _accepted(server, args)


def test_the_refusal_reaches_the_command_line_with_exit_1(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump({"models": [EMBEDDER, {**MODEL["vllm"], "args": ["--serv", "other"]}]}))
    result = CliRunner().invoke(cli, ["validate", str(profile)])
    assert result.exit_code == 1
    assert "models.1.args: --serv abbreviates --served-model-name" in result.stderr
    assert "use models.1.served_model_name" in result.stderr


# ---------------------------------------------------------------- the stand-ins read the same spellings
def _parsed(kind: str, argv: list[str]) -> Any:
    return model_server.PARSERS[kind](argv)


def test_the_vllm_stand_in_reads_an_abbreviation_as_the_flag() -> None:
    # Prefixes that are unambiguous among all of vLLM 0.11.0's flags, not only those the stand-in reads.
    server = _parsed("vllm", ["--model", "org/weights", "--serv", "served-id", "--por=9001", "--api-k", "k"])
    assert (server.served, server.port, server.api_key) == (["served-id"], 9001, "k")
    assert _parsed("vllm", ["--model", "m", "--max-model", "2048"]).max_len == 2048


def test_the_whisper_stand_in_reads_an_abbreviation_as_the_flag() -> None:
    server = _parsed("whisper", ["--mod", "org/whisper", "--po", "9002"])
    assert (server.model, server.port) == ("org/whisper", 9002)


def test_the_tei_stand_in_refuses_an_abbreviation_and_reads_the_short_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _parsed("tei", ["--model-i", "org/embedder"])
    assert exited.value.code == 2 and "unexpected argument '--model-i'" in capsys.readouterr().err
    assert _parsed("tei", ["--model-id", "m", "-p", "9003"]).port == 9003
    assert _parsed("tei", ["--model-id", "m", "-p9004"]).port == 9004
    assert _parsed("tei", ["--model-id", "m", "--hf-api-token", "t"]).model == "m"
