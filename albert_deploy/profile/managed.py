"""Flags and variables albert-deploy sets on each model server itself, as data: a profile's `args`
or `env` may not set them, and the message names the profile key to use instead.

Each remedy may name ``{at}`` (the model's location, e.g. models.0) and ``{key}`` (its .env key
variable), ``{name}`` (its name). Sources: vLLM v0.11.0 `vllm serve --help`; TEI 1.8 router/src/main.rs, where every flag
is also read from the variable of its name in upper case (`#[clap(long, env)]`); whisper-openai-api
a7d1e0bef8cc app/utils/args.py:5-11 and app/utils/config.py:4 (API_KEY).
"""

from __future__ import annotations

import re

from albert_deploy.profile.strict import _LocatedError

_PORT = "use {at}.port to publish a port"
_KEY = "the key is {key} in .env, which albert-deploy generates"
_CACHE = "albert-deploy mounts the model cache as the volume {name}-cache; `albert-deploy pull` fills it"
_TOKEN = "set HF_TOKEN in .env"
_OFFLINE = "use `offline: true`"

# huggingface_hub's variables, read by every server; the plan sets them from the profile and .env.
_HUB_ENV = {
    "HF_TOKEN": _TOKEN,
    "HF_HOME": _CACHE,
    "HF_HUB_CACHE": _CACHE,
    "HUGGINGFACE_HUB_CACHE": _CACHE,
    "HF_HUB_OFFLINE": _OFFLINE,
    "TRANSFORMERS_OFFLINE": _OFFLINE,
}

MANAGED_FLAGS: dict[str, dict[str, str]] = {
    "vllm": {
        "--model": "use {at}.model",
        "--served-model-name": "use {at}.served_model_name",
        "--host": "the server listens inside its container; use {at}.port to publish it",
        "--port": _PORT,
        "--api-key": _KEY,
        "--max-model-len": "use {at}.max_model_len",
        "--gpu-memory-utilization": "the placement sets it from {at}.gpus and gpu_keep_free",
        "--tensor-parallel-size": "use {at}.gpus (a count or a list of GPUs)",
        "-tp": "use {at}.gpus (a count or a list of GPUs)",  # vllm/engine/arg_utils.py's short form
        "--max-num-seqs": "use {at}.max_num_seqs",
        "--download-dir": _CACHE,
    },
    "tei": {
        "--model-id": "use {at}.model",
        "--port": _PORT,
        "--api-key": _KEY,
        "--hf-token": _TOKEN,
        "--auto-truncate": "albert-deploy sets it (its default changed in TEI 1.9)",
        "--huggingface-hub-cache": _CACHE,
    },
    "whisper": {"--model": "use {at}.model", "--port": _PORT, "--hf-token": _TOKEN},
}

MANAGED_ENV: dict[str, dict[str, str]] = {
    "vllm": {**_HUB_ENV, "VLLM_API_KEY": _KEY},
    "tei": {
        **_HUB_ENV,
        "API_KEY": _KEY,
        "PORT": _PORT,
        "MODEL_ID": "use {at}.model",
        "AUTO_TRUNCATE": MANAGED_FLAGS["tei"]["--auto-truncate"],
    },
    "whisper": {**_HUB_ENV, "API_KEY": _KEY},
}


def key_variable(model_name: str) -> str:
    """The .env variable holding a hosted model server's API key (the plan's ``key_ref``)."""
    return "MODEL_" + re.sub(r"[^A-Z0-9]+", "_", model_name.upper()).strip("_") + "_KEY"


def _flag(arg: str) -> str:
    # `--x=value` and `--x value` alike; vLLM also reads `--max_model_len` as `--max-model-len`
    # (FlexibleArgumentParser, vllm/utils); `-tp=2` as `-tp 2`.
    name = arg.split("=", 1)[0]
    return name.replace("_", "-") if name.startswith("--") else name


def check_managed(index: int, server: str, name: str, args: list[str], env: dict[str, str]) -> None:
    """Refuse a managed flag in ``args`` or a managed variable in ``env``, naming the key to use."""
    at = f"models.{index}"
    for arg in args:
        remedy = MANAGED_FLAGS[server].get(_flag(arg))
        if remedy is not None:
            raise _LocatedError(
                f"{at}.args",
                f"{_flag(arg)} is managed by albert-deploy: {remedy.format(at=at, key=key_variable(name), name=name)}",
            )
    for variable in env:
        remedy = MANAGED_ENV[server].get(variable)
        if remedy is not None:
            raise _LocatedError(
                f"{at}.env.{variable}",
                f"{variable} is managed by albert-deploy: {remedy.format(at=at, key=key_variable(name), name=name)}",
            )


def check_key_variables(hosted: list[tuple[int, str]]) -> None:
    """Two model names that differ only in '-', '_' or '.' would share one API-key variable."""
    seen: dict[str, tuple[int, str]] = {}
    for index, name in hosted:
        variable = key_variable(name)
        if variable in seen:
            first, other = seen[variable]
            raise _LocatedError(
                f"models.{index}.name",
                f"'{name}' and '{other}' (models.{first}) would both read their API key from {variable}: "
                "rename one (names that differ only in '-', '_' or '.' share a variable)",
            )
        seen[variable] = (index, name)
