"""Flags and variables albert-deploy sets on each model server itself, as data: a profile's `args`
or `env` may not set them, and the message names the profile key to use instead.

Each remedy may name ``{at}`` (the model's location, e.g. models.0) and ``{key}`` (its .env key
variable), ``{name}`` (its name). Sources: vLLM v0.11.0 `vllm serve --help`; TEI 1.8.3 router/src/main.rs:14-188,
where every flag is also read from the variable of its name in upper case (`#[clap(long, env)]`), `-p` is
--port's short form (:138) and --hf-api-token the deprecated --hf-token (:123-126, :219-224); whisper-openai-api
a7d1e0bef8cc app/utils/args.py:5-11 and app/utils/config.py:4 (API_KEY).

vLLM's and whisper's parsers are argparse's with ``allow_abbrev`` left True, so `--serv x` is
`--served-model-name x` there (vllm-project/vllm@v0.11.0 vllm/entrypoints/openai/api_server.py:1947-1950,
etalab-ia/whisper-openai-api@a7d1e0bef8cc app/utils/args.py:4); clap matches TEI's long flags whole
(router/src/main.rs:12-13, no infer_long_args). A prefix of a managed flag is refused where it abbreviates.
No unmanaged flag of either server is itself a prefix of a managed one (checked in vLLM 0.11.0's 199 flags).
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
        "-p": _PORT,  # --port's short form: `-p 9000`, `-p=9000` and `-p9000` alike
        "--api-key": _KEY,
        "--hf-token": _TOKEN,
        "--hf-api-token": _TOKEN + " (--hf-api-token is the deprecated --hf-token)",
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
        "HF_API_TOKEN": _TOKEN + " (HF_API_TOKEN is the deprecated HF_TOKEN)",
        "PORT": _PORT,
        "MODEL_ID": "use {at}.model",
        "AUTO_TRUNCATE": MANAGED_FLAGS["tei"]["--auto-truncate"],
    },
    "whisper": {**_HUB_ENV, "API_KEY": _KEY},
}

# Whether the server's parser takes an unambiguous prefix of a flag for the whole flag (see above).
ABBREVIATES = {"vllm": True, "tei": False, "whisper": True}


def key_variable(model_name: str) -> str:
    """The .env variable holding a hosted model server's API key (the plan's ``key_ref``)."""
    return "MODEL_" + re.sub(r"[^A-Z0-9]+", "_", model_name.upper()).strip("_") + "_KEY"


def _flag(arg: str) -> str:
    # `--x=value` and `--x value` alike; vLLM also reads `--max_model_len` as `--max-model-len`
    # (FlexibleArgumentParser, vllm/utils); `-tp=2` as `-tp 2`.
    name = arg.split("=", 1)[0]
    return name.replace("_", "-") if name.startswith("--") else name


def _refusal(server: str, arg: str, at: str, name: str) -> str | None:
    """Why ``arg`` may not be in ``args``, or None."""
    flags, flag = MANAGED_FLAGS[server], _flag(arg)
    fill = {"at": at, "key": key_variable(name), "name": name}
    if flag not in flags and len(flag) > 2 and flag[1] != "-" and flag[:2] in flags:
        flag = flag[:2]  # a one-letter flag with its value attached: `-p9000`
    if flag in flags:
        return f"{flag} is managed by albert-deploy: {flags[flag].format(**fill)}"
    prefixed = sorted(f for f in flags if f.startswith(flag)) if ABBREVIATES[server] and flag not in ("-", "--") else []
    if not prefixed:
        return None
    remedies = [flags[f].format(**fill) for f in prefixed]
    how = remedies[0] if len(prefixed) == 1 else "; ".join(f"{f}: {r}" for f, r in zip(prefixed, remedies, strict=True))
    return (
        f"{flag} abbreviates {' or '.join(prefixed)}, which albert-deploy manages ({server} reads an unambiguous "
        f"prefix of a flag as the flag): {how}"
    )


def check_managed(index: int, server: str, name: str, args: list[str], env: dict[str, str]) -> None:
    """Refuse a managed flag (or, where the server's parser allows it, its abbreviation) in ``args``, or a
    managed variable in ``env``, naming the key to use."""
    at = f"models.{index}"
    for arg in args:
        refusal = _refusal(server, arg, at, name) if arg.startswith("-") else None
        if refusal is not None:
            raise _LocatedError(f"{at}.args", refusal)
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
