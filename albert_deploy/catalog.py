"""Known model servers and models, as plain data.

Facts come from each project's own documentation (see the README's "Sources" section). A model in
``MODELS`` needs only its Hugging Face id in a profile; any other model names its ``server``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TEXT_GENERATION = "text-generation"
EMBEDDINGS = "text-embeddings-inference"
SPEECH = "automatic-speech-recognition"
RERANK = "text-classification"
ModelType = Literal[
    "text-generation", "text-embeddings-inference", "automatic-speech-recognition", "text-classification"
]
ServerName = Literal["vllm", "tei", "whisper"]

GIB = 1024**3


@dataclass(frozen=True)
class HttpGet:
    """A health check that is a plain HTTP GET inside the container (Kubernetes probes it as httpGet)."""

    port: int
    path: str
    key_env: str | None = None  # the container's variable holding the bearer key the check sends


@dataclass(frozen=True)
class HealthCheck:
    """A compose-style health check. ``test`` holds literal text: ``$`` means the container's own
    shell variable, and the renderer escapes it for compose. ``http``: the same check as typed
    data, when it is a plain GET (built by ``curl_get``, ``urlopen_get`` or ``dev_tcp_get``)."""

    test: tuple[str, ...]
    start_period_s: int
    interval_s: int = 10
    timeout_s: int = 5
    retries: int = 5
    http: HttpGet | None = None

    def argv(self) -> tuple[str, ...] | None:
        """What Docker runs: ``CMD``'s arguments; ``CMD-SHELL``'s command through the container's /bin/sh."""
        kind, *rest = self.test
        return {"CMD": tuple(rest), "CMD-SHELL": ("/bin/sh", "-c", *rest[:1])}.get(kind) if rest else None


def curl_get(get: HttpGet, start_period_s: int) -> HealthCheck:
    """For images with curl."""
    header = f'-H "Authorization: Bearer ${get.key_env}" ' if get.key_env else ""
    test = ("CMD-SHELL", f"curl -fsS -o /dev/null {header}http://localhost:{get.port}{get.path}")
    return HealthCheck(test=test, start_period_s=start_period_s, http=get)


def urlopen_get(get: HttpGet, start_period_s: int) -> HealthCheck:
    """For images with python3 but no curl."""
    probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{get.port}{get.path}', timeout=4)"
    return HealthCheck(test=("CMD", "python3", "-c", probe), start_period_s=start_period_s, http=get)


def dev_tcp_get(get: HttpGet, start_period_s: int) -> HealthCheck:
    """For images with bash but neither curl nor wget: HTTP over bash's /dev/tcp."""
    probe = (
        f"exec 3<>/dev/tcp/127.0.0.1/{get.port} && printf 'GET {get.path} HTTP/1.0\\r\\n\\r\\n' >&3 "
        "&& head -n 1 <&3 | grep -q ' 200 '"
    )
    return HealthCheck(test=("CMD", "bash", "-c", probe), start_period_s=start_period_s, http=get)


@dataclass(frozen=True)
class Server:
    name: str
    serves: tuple[str, ...]  # model types this server can serve
    image: str  # pinned; "{variant}" is filled for TEI from the GPU generation
    port: int  # port inside the container
    cache_path: str  # Hugging Face cache inside the container (the model-cache volume's mount point)
    hub_cache: str  # where the server looks for hub downloads (models--org--name/...)
    api_key_env: str  # environment variable the server reads its API key from
    health: HealthCheck
    needs_gpu: bool  # True: a CPU placement is refused
    user: str | None = None  # uid the image runs as, when it is not root
    entrypoint: tuple[str, ...] = ()  # the image's (whisper has none, app/Dockerfile:1-23); see plan/startup.py
    cap_add: tuple[str, ...] = ()  # added back after `cap_drop: [ALL]`: only what the image needs
    host_overhead_gib: int = 4  # RAM beyond the weights, per GPU worker (memory limit = weights + this)
    bytes_per_param: dict[str, float] = field(default_factory=lambda: {"bf16": 2, "fp16": 2, "fp32": 4})


SERVERS: dict[str, Server] = {  # keys: ServerName
    "vllm": Server(
        name="vllm",
        serves=(TEXT_GENERATION,),
        image="vllm/vllm-openai:v0.11.0",
        port=8000,
        cache_path="/root/.cache/huggingface",
        hub_cache="/root/.cache/huggingface/hub",  # HF_HOME's default, hub/ under it
        api_key_env="VLLM_API_KEY",
        # /health stays open when an API key is set.
        health=curl_get(HttpGet(8000, "/health"), start_period_s=900),
        entrypoint=("python3", "-m", "vllm.entrypoints.openai.api_server"),  # docker/Dockerfile:540-542
        needs_gpu=True,
        # Root (no USER in docker/Dockerfile at v0.11.0; its entrypoint, unlike `vllm serve`, takes --model) on
        # root-owned volumes: no capability. RAM: runtime (~4 GiB, estimate) + `--swap-space` (4 GiB per GPU).
        host_overhead_gib=8,
    ),
    "tei": Server(
        name="tei",
        serves=(EMBEDDINGS, RERANK),
        image="ghcr.io/huggingface/text-embeddings-inference:{variant}",
        port=80,
        cache_path="/data",
        hub_cache="/data",  # the image sets HUGGINGFACE_HUB_CACHE=/data
        api_key_env="API_KEY",
        health=curl_get(HttpGet(80, "/health"), start_period_s=300),
        entrypoint=("text-embeddings-router",),  # huggingface/text-embeddings-inference@v1.8.3 Dockerfile-cuda:141
        needs_gpu=False,
        # Root (no USER, Dockerfile-cuda:116-142 at v1.8.3) on port 80 (`PORT=80`, :121): below 1024.
        cap_add=("NET_BIND_SERVICE",),
    ),
    "whisper": Server(
        name="whisper",
        serves=(SPEECH,),
        # Published only as `latest` and commit hashes: pinned to main's head commit.
        image="ghcr.io/etalab-ia/whisper-openai-api/app:a7d1e0bef8cc5a1746b6b95d74ebe9050f5efe38",
        port=8000,
        cache_path="/home/whisper/.cache/huggingface",
        hub_cache="/home/whisper/.cache/huggingface/hub",
        api_key_env="API_KEY",
        # With API_KEY set, /health needs the bearer token too.
        health=curl_get(HttpGet(8000, "/health", key_env="API_KEY"), start_period_s=600),
        needs_gpu=True,
        user="1100",
        # Starts as root with only these to own its cache, then drops to 1100 (servers.OWN_CACHE_THEN_DROP).
        cap_add=("CHOWN", "SETUID", "SETGID"),
    ),
}

# `albert-deploy pull` runs the hub download in this image (python3 and huggingface_hub inside;
# TEI's image has no python). A profile overrides it with `images: {downloader: ...}`.
DOWNLOADER_IMAGE = "vllm/vllm-openai:v0.11.0"

# TEI image tags by GPU compute capability (major, minor); see references/images-health-memory.
TEI_VERSION = "1.8.3"  # a patch release: `1.8` moves; the stand-in copies 1.8.3's flags
TEI_VARIANTS: dict[tuple[int, int], str] = {
    (9, 0): "hopper-", (8, 9): "89-", (8, 6): "86-", (8, 0): "", (7, 5): "turing-",
}  # fmt: skip


def tei_runs_on_cpu(compute_capability: tuple[int, int] | None, on_gpu: bool) -> bool:
    """TEI runs its CPU build off GPU, and on GPUs below compute capability 7.5 (it has no build for them)."""
    return not on_gpu or (compute_capability is not None and compute_capability < (7, 5))


def tei_tag(compute_capability: tuple[int, int] | None, on_gpu: bool) -> str:
    """The TEI image tag for a GPU generation; the CPU build where ``tei_runs_on_cpu``."""
    if tei_runs_on_cpu(compute_capability, on_gpu):
        return f"cpu-{TEI_VERSION}"
    # No generation given, or an unknown newer one: the generic CUDA build.
    return (TEI_VARIANTS.get(compute_capability, "") if compute_capability else "") + TEI_VERSION


@dataclass(frozen=True)
class KnownModel:
    hf_id: str
    type: str
    server: str
    params_b: float  # billions of parameters
    dtype: str = "bf16"
    # For vLLM's KV cache: layers, KV heads, head dimension, attention heads.
    layers: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    attention_heads: int = 0
    max_positions: int = 0
    sliding_window: int = 0
    # Activation and runtime overhead under TEI or whisper, in GiB (estimates).
    runtime_gib: float = 1.0


MODELS: dict[str, KnownModel] = {
    m.hf_id: m
    for m in (
        KnownModel(
            hf_id="AgentPublic/guillaumetell-7b",
            type=TEXT_GENERATION,
            server="vllm",
            params_b=7.24,
            dtype="bf16",
            layers=32,
            kv_heads=8,
            head_dim=128,
            attention_heads=32,
            max_positions=32768,
            sliding_window=4096,
            runtime_gib=1.0,
        ),
        KnownModel(
            hf_id="intfloat/multilingual-e5-large",
            type=EMBEDDINGS,
            server="tei",
            params_b=0.56,
            dtype="fp16",
            runtime_gib=1.5,
        ),
        KnownModel(
            hf_id="BAAI/bge-reranker-v2-m3", type=RERANK, server="tei", params_b=0.568, dtype="fp16", runtime_gib=1.5
        ),
        KnownModel(
            hf_id="openai/whisper-large-v3-turbo",
            type=SPEECH,
            server="whisper",
            params_b=0.809,
            dtype="fp16",
            runtime_gib=2.5,
        ),
    )
}


def catalog_listing() -> str:
    """One line naming every catalog model, for error messages."""
    return ", ".join(f"{m.hf_id} ({m.type})" for m in MODELS.values())


@dataclass(frozen=True)
class GpuModel:
    """A GPU as ``nvidia-smi --query-gpu=name,memory.total,compute_cap`` reports it."""

    names: tuple[str, ...]
    memory_mib: int
    compute_capability: tuple[int, int]


GPU_MODELS: tuple[GpuModel, ...] = (
    GpuModel(("NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe"), 81559, (9, 0)),
    GpuModel(("NVIDIA H200",), 143771, (9, 0)),
    GpuModel(("NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"), 81920, (8, 0)),
    GpuModel(("NVIDIA A100-SXM4-40GB",), 40960, (8, 0)),
    GpuModel(("NVIDIA L40S",), 46068, (8, 9)),
    GpuModel(("NVIDIA L4",), 23034, (8, 9)),
    GpuModel(("NVIDIA A10", "NVIDIA A10G"), 23028, (8, 6)),
    GpuModel(("NVIDIA GeForce RTX 4090",), 24564, (8, 9)),
    GpuModel(("NVIDIA GeForce RTX 3090",), 24576, (8, 6)),
    GpuModel(("Tesla T4",), 15360, (7, 5)),
    GpuModel(("Tesla V100-SXM2-16GB",), 16384, (7, 0)),
    GpuModel(("Tesla V100-SXM2-32GB",), 32768, (7, 0)),
)


def gpu_by_name(name: str) -> GpuModel | None:
    return next((gpu for gpu in GPU_MODELS if name in gpu.names), None)


# --- Albert API releases -------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    version: str
    image: str
    template: str  # file under templates/
    vector_stores: tuple[str, ...]
    requires_text_generation: bool
    uses_postgres: bool
    config_mount: str  # where the container reads its config
    # The API substitutes ${VAR} in its config itself (0.1+); older ones get a wrapper command.
    substitutes_env: bool
    # 0.1+ serve each model under its profile name behind the master key, so `check` can go through
    # the API; 0.0.x name models by what servers report and have no master key.
    checkable_through_api: bool
    memory_gib: int = 2  # the API's memory limit: a default for one worker, not a measurement


RELEASES: dict[str, Release] = {
    "0.0.3": Release(
        version="0.0.3",
        image="ghcr.io/etalab-ia/albert-api/app:0.0.3",
        template="config-0.0.3.yml.j2",
        vector_stores=("qdrant", "elasticsearch"),
        requires_text_generation=True,
        uses_postgres=False,
        config_mount="/home/albert/conf/config.yml",
        substitutes_env=False,
        checkable_through_api=False,
    ),
    "0.2.0": Release(
        version="0.2.0",
        image="ghcr.io/etalab-ia/albert-api/app:0.2.0",
        template="config-0.2.0.yml.j2",
        vector_stores=("qdrant", "elasticsearch"),
        requires_text_generation=False,
        uses_postgres=True,
        config_mount="/config.yml",
        substitutes_env=True,
        checkable_through_api=True,
    ),
}
