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
    # Each client is constructed, hence probed, once in the lifespan; any exception drops it for
    # the process's lifetime, never retried; a model with no client left is skipped.
    "0.2.0 models probed once at startup": Fact(
        True, _at("0.2.0", "app/utils/lifespan.py:36-55 (try: ModelClient(...) except Exception: continue)")
    ),
    # What each client's constructor asks. GETs must answer 200 (and name the model); the POST only
    # sets the vector size, so any HTTP answer passes and only an unreachable server fails.
    "0.2.0 probe by client type": Fact(
        {
            "vllm": ("GET /v1/models",),
            "openai": ("GET /v1/models", "POST /v1/embeddings"),
            "tei": ("GET /info", "POST /v1/embeddings"),
        },
        _at(
            "0.2.0",
            "app/clients/model/_vllmmodelclient.py:39-48; app/clients/model/_openaimodelclient.py:39-64; "
            "app/clients/model/_teimodelclient.py:42-65",
        ),
    ),
    # /metrics: the master key can do anything, so it reads metrics (scraped with it as the bearer).
    "0.2.0 metrics need": Fact(
        "read_metric",
        _at(
            "0.2.0",
            "app/factory.py:145 (AccessController(permissions=[READ_METRIC])); "
            "app/helpers/_accesscontroller.py:56,141 (HTTPBearer; master_key: master user can do anything)",
        ),
    ),
    # prometheus-fastapi-instrumentator 7.0.2 (pyproject.toml:46), its default metrics.
    "0.2.0 request counter": Fact(
        ("http_requests_total", ("method", "status", "handler"), "2xx"),
        _at("0.2.0", "app/factory.py:144-145 (Instrumentator(), pinned at 7.0.2 by pyproject.toml:46); ")
        + "trallnag/prometheus-fastapi-instrumentator@v7.0.2 src/prometheus_fastapi_instrumentator/metrics.py:673-678; "
        "instrumentation.py:30 (should_group_status_codes=True: status as 2xx, 4xx, ...)",
    ),
    "0.2.0 streams chat": Fact(
        "text/event-stream",
        _at(
            "0.2.0",
            "app/endpoints/chat.py:73-76 (StreamingResponseWithStatusCode(client.forward_stream(...), "
            'media_type="text/event-stream")); 0.0.3 app/endpoints/chat.py:89',
        ),
    ),
    "0.2.0 user": Fact(1100, _at("0.2.0", "app/Dockerfile:31, 44 (useradd --uid 1100 albert; USER albert)")),
    "0.2.0 workdir": Fact("/", _at("0.2.0", "app/Dockerfile:45")),
    "0.2.0 default config file": Fact(
        "config.yml", _at("0.2.0", "app/schemas/core/settings.py:336 (relative to WORKDIR /)")
    ),
    # ------------------------------------------------------------ the playground UI, 0.2.0
    "ui 0.2.0 port": Fact(8501, _at("0.2.0", "scripts/startup_ui.sh:21-22 (streamlit run ... --server.port=8501)")),
    "ui 0.2.0 max upload default": Fact("20", _at("0.2.0", "scripts/startup_ui.sh:5 (MAX_UPLOAD_SIZE MB)")),
    "ui 0.2.0 extra args env": Fact("STREAMLIT_CMD_ARGS", _at("0.2.0", "scripts/startup_ui.sh:6, 27")),
    "ui 0.2.0 migrations first": Fact(True, _at("0.2.0", "scripts/startup_ui.sh:13 (alembic upgrade head)")),
    "ui 0.2.0 config file": Fact(
        "/config.yml", _at("0.2.0", "ui/settings.py:96 (config.yml, relative to WORKDIR / of ui/Dockerfile:44)")
    ),
    "ui 0.2.0 variable pattern": Fact(r"\$\{[A-Z_][A-Z_0-9]*\}", _at("0.2.0", "ui/settings.py:110-114")),
    "ui 0.2.0 required sections": Fact(("auth", "playground", "databases"), _at("0.2.0", "ui/settings.py:74-77")),
    "ui 0.2.0 default database context": Fact("playground", _at("0.2.0", "ui/settings.py:49")),
    "ui 0.2.0 sql databases with context playground": Fact(1, _at("0.2.0", "ui/settings.py:79-85")),
    "ui 0.2.0 sql url prefixes": Fact(("postgresql", "sqlite"), _at("0.2.0", "ui/settings.py:32")),
    "ui 0.2.0 user": Fact(1100, _at("0.2.0", "ui/Dockerfile:30-31, 43")),
    "ui 0.2.0 page title": Fact("Albert playground", _at("0.2.0", "ui/main.py:10-11 (st.set_page_config)")),
}


# Streamlit, which the playground image runs (streamlit==1.45.1: albert-api@0.2.0 pyproject.toml:22).
UI_FACTS: dict[str, Fact] = {
    "streamlit health path": Fact(
        "/_stcore/health",
        "streamlit/streamlit@1.45.1 lib/streamlit/web/server/server.py (line not recorded; NEW_HEALTH_ENDPOINT "
        "'_stcore/health', routed under server.baseUrlPath by make_url_path_regex; read on main)",
    ),
}


def value(name: str) -> object:
    return FACTS[name].value


# ---------------------------------------------------------------- model servers and qdrant
# What model_server.py and qdrant_server.py apply, read from each upstream repository at the tag
# its image is built from. "(line not recorded)" marks a fact whose file is known but whose line
# was not noted when it was read (to be filled in from the tag; the source test accepts the marker).
VLLM = "vllm-project/vllm@v0.11.0"
TEI = "huggingface/text-embeddings-inference@v1.8.0"
WHISPER = "etalab-ia/whisper-openai-api@a7d1e0bef8cc5a1746b6b95d74ebe9050f5efe38"
QDRANT = "qdrant/qdrant@v1.11.5"
PROMETHEUS = "prometheus/prometheus@v2.53.2"  # the image albert-deploy pins (plan/monitoring.py)
NOT_RECORDED = "(line not recorded)"
TEI_1_8_VALUE_FLAGS = (
    "--model-id", "--revision", "--tokenization-workers", "--dtype", "--pooling", "--max-concurrent-requests",
    "--max-batch-tokens", "--max-batch-requests", "--max-client-batch-size", "--default-prompt-name",
    "--default-prompt", "--dense-path", "--hf-api-token", "--hf-token", "--hostname", "--port", "-p",
    "--uds-path", "--huggingface-hub-cache", "--payload-limit", "--api-key", "--otlp-endpoint",
    "--otlp-service-name", "--prometheus-port", "--cors-allow-origin",
)  # fmt: skip

VLLM_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0,
    7680.0,
)  # fmt: skip

SERVER_FACTS: dict[str, Fact] = {
    # ------------------------------------------------------------ vLLM
    "vllm port": Fact(8000, f"{VLLM} vllm/entrypoints/openai/cli_args.py {NOT_RECORDED} (port default 8000)"),
    "vllm api key env": Fact(
        "VLLM_API_KEY", f"{VLLM} vllm/entrypoints/openai/api_server.py {NOT_RECORDED} (envs.VLLM_API_KEY or --api-key)"
    ),
    "vllm guarded prefix": Fact(
        "/v1", f"{VLLM} vllm/entrypoints/openai/api_server.py:1300 (url_path.startswith('/v1') and not verify_token)"
    ),
    "vllm open health": Fact(
        "/health", f"{VLLM} vllm/entrypoints/openai/api_server.py:345-352 (@router.get('/health'))"
    ),
    "vllm reported id flags": Fact(
        ("--served-model-name", "--model"), f"{VLLM} vllm/config {NOT_RECORDED} (served_model_name defaults to model)"
    ),
    # Load, then listen: connections are refused until every allocation of start-up is done, so a
    # stand-in's load window is from its start to the moment it binds (see docs/memory-model.md).
    "vllm listens once loaded": Fact(
        True,
        f"{VLLM} vllm/entrypoints/openai/api_server.py:1905-1918 (serve_http after the engine client: "
        "weights, profile run, KV cache, CUDA graphs)",
    ),
    "vllm default model": Fact("Qwen/Qwen3-0.6B", f"{VLLM} vllm/engine/arg_utils.py {NOT_RECORDED} (model default)"),
    "vllm user": Fact(None, f"{VLLM} docker/Dockerfile:556-558 (no USER line: root)"),
    "vllm cache path": Fact(
        "/root/.cache/huggingface",
        f"{VLLM} docker/Dockerfile:556-558 (root, no HF_HOME: the hub's ~/.cache/huggingface)",
    ),
    # Metrics: served at /metrics on the API port, outside the /v1 prefix the key guards.
    "vllm metrics path": Fact(
        "/metrics", f"{VLLM} vllm/entrypoints/openai/api_server.py {NOT_RECORDED} (mount_metrics: Mount('/metrics'))"
    ),
    # Names and labels as prometheus_client renders them (a Counter gains _total). Lines counted in
    # the copy stored for the search tools (vllm@005a810b, V1 engine, before v0.11.0).
    "vllm metrics": Fact(
        {
            "labels": ("model_name", "engine"),
            "counters": ("vllm:generation_tokens", "vllm:prompt_tokens"),
            "histogram": "vllm:e2e_request_latency_seconds",
            "gauges": ("vllm:kv_cache_usage_perc", "vllm:num_requests_running"),
        },
        f"{VLLM} vllm/v1/metrics/loggers.py {NOT_RECORDED} (PrometheusStatLogger; read in vllm@005a810b, "
        "lines 168-169 labelnames, 189, 245, 278, 286 the gauges and counters)",
    ),
    "vllm latency buckets": Fact(
        VLLM_LATENCY_BUCKETS,
        f"{VLLM} vllm/v1/metrics/loggers.py {NOT_RECORDED} (request_latency_buckets, read in vllm@005a810b)",
    ),
    "vllm stream format": Fact(
        ("text/event-stream", "chat.completion.chunk", "data: [DONE]\n\n"),
        f"{VLLM} vllm/entrypoints/openai/api_server.py {NOT_RECORDED} (StreamingResponse media_type "
        f"text/event-stream); vllm/entrypoints/openai/serving_chat.py {NOT_RECORDED} (one `data: <json>` event per "
        "ChatCompletionStreamResponse, object chat.completion.chunk, first delta the role, then `data: [DONE]`)",
    ),
    # ------------------------------------------------------------ TEI 1.8
    "tei port": Fact(80, f"{TEI} Dockerfile-cuda:120 (ENV PORT=80)"),
    "tei router default port": Fact(3000, f"{TEI} router/src/main.rs {NOT_RECORDED} (port default 3000)"),
    "tei api key env": Fact("API_KEY", f"{TEI} router/src/main.rs {NOT_RECORDED} (api_key: #[clap(long, env)])"),
    "tei open paths": Fact(
        ("/health", "/", "/ping", "/metrics"), f"{TEI} router/src/http/server.rs:1751-1759 (public routes)"
    ),
    "tei reported id flag": Fact("--model-id", f"{TEI} router/src/http/server.rs {NOT_RECORDED} (/info model_id)"),
    "tei value flags": Fact(TEI_1_8_VALUE_FLAGS, f"{TEI} router/src/main.rs {NOT_RECORDED} (clap Args, 1.8.3)"),
    "tei bool flags": Fact(
        ("--auto-truncate", "--json-output", "--disable-spans"), f"{TEI} router/src/main.rs {NOT_RECORDED} (clap Args)"
    ),
    "tei refused flags": Fact(("--served-model-name",), f"{TEI} router/src/main.rs {NOT_RECORDED} (absent in 1.8)"),
    "tei listens once loaded": Fact(
        True,
        f"{TEI} router/src/http/server.rs:1848-1853 (TcpListener::bind, 'Ready', after lib.rs:239-261 load and warm-up)",
    ),
    # TEI's metrics are on its API port: the HTTP router builds the Prometheus recorder and drops
    # the exporter future, so the listener on --prometheus-port (default 9000) never runs.
    "tei metrics port": Fact(
        "api",
        f"{TEI} router/src/http/server.rs:1594-1596, 1748-1759 (GET /metrics among the public routes), 1699 "
        "(`let (recorder, _) = prom_builder.build()`); router/src/main.rs:180-182 (--prometheus-port, default 9000); "
        "router/src/prometheus.rs:42 (with_http_listener); router/src/lib.rs:321 (same lines at v1.8.3)",
    ),
    # metrics-exporter-prometheus: counters and histograms under these names, no model label.
    "tei metrics": Fact(
        {"counter": ("te_request_count", "te_request_success"), "label": "method", "histogram": "te_request_duration"},
        f"{TEI} router/src/http/server.rs:177, 255 (method single|batch); router/src/lib.rs:602 (te_request_duration); "
        "router/src/prometheus.rs:13-22 (35 buckets, 1e-5 x 1.5^k)",
    ),
    "tei user": Fact(None, f"{TEI} Dockerfile-cuda:116-142 (no USER line: root)"),
    "tei cache path": Fact("/data", f"{TEI} Dockerfile-cuda:120 (ENV HUGGINGFACE_HUB_CACHE=/data)"),
    # ------------------------------------------------------------ whisper-openai-api
    "whisper port": Fact(8000, f"{WHISPER} app/utils/args.py:5-11 (--port default 8000)"),
    "whisper api key env": Fact("API_KEY", f"{WHISPER} app/utils/config.py:4 (API_KEY = os.getenv('API_KEY'))"),
    "whisper open paths": Fact(
        (), f"{WHISPER} app/endpoints/monitoring.py:11-17 (/health has Security(check_api_key))"
    ),
    "whisper reported id flag": Fact("--model", f"{WHISPER} app/utils/args.py:5-11 (--model)"),
    "whisper default model": Fact("openai/whisper-large-v3", f"{WHISPER} app/utils/args.py:5-11 (--model default)"),
    "whisper flags": Fact(
        ("--model", "--port", "--reload", "--root-path", "--hf-token", "--force-download", "--debug"),
        f"{WHISPER} app/utils/args.py:5-11 (argparse)",
    ),
    "whisper bind host": Fact("0.0.0.0", f"{WHISPER} app/main.py:27-34 (uvicorn.run host='0.0.0.0')"),
    "whisper listens once loaded": Fact(
        True, f"{WHISPER} app/main.py:27-34 (uvicorn runs the lifespan, app/utils/lifespan.py:18-37, before it binds)"
    ),
    "whisper metrics": Fact(
        None, f"{WHISPER} app/main.py:19-21 (routers: monitoring (/health only), models, audio; no /metrics)"
    ),
    "whisper user": Fact("1100", f"{WHISPER} app/Dockerfile:12-16 (useradd --uid 1100 whisper; USER whisper)"),
    "whisper cache path": Fact("/home/whisper/.cache/huggingface", f"{WHISPER} compose.yml:9 (cache volume)"),
    # ------------------------------------------------------------ qdrant (-unprivileged)
    "qdrant version": Fact("1.11.5", _at("0.2.0", "compose.yml:68-82 (qdrant/qdrant:v1.11.5-unprivileged)")),
    "qdrant port": Fact(6333, f"{QDRANT} config/config.yaml {NOT_RECORDED} (service.http_port: 6333)"),
    "qdrant open paths": Fact(
        ("/healthz", "/livez", "/readyz"), f"{QDRANT} src/actix/auth.rs {NOT_RECORDED} (paths skipped by the key check)"
    ),
    "qdrant api key env": Fact(
        "QDRANT__SERVICE__API_KEY", _at("0.2.0", "compose.yml:68-82 (QDRANT__SERVICE__API_KEY=changeme)")
    ),
    "qdrant api key header": Fact("api-key", f"{QDRANT} src/actix/auth.rs {NOT_RECORDED} (api-key header or Bearer)"),
    "qdrant storage path": Fact("/qdrant/storage", _at("0.2.0", "compose.yml:74 (qdrant:/qdrant/storage)")),
    "qdrant user": Fact("1000", f"{QDRANT} Dockerfile {NOT_RECORDED} (-unprivileged build: uid 1000)"),
    # Snapshots, for `albert-deploy backup` and `restore` (read at the tag, lines recorded).
    "qdrant snapshots path": Fact(
        "/qdrant/snapshots", f"{QDRANT} config/config.yaml:17 (snapshots_path: ./snapshots; WORKDIR /qdrant)"
    ),
    "qdrant collection snapshots dir": Fact(
        "{snapshots}/{collection}", f"{QDRANT} lib/storage/src/content_manager/toc/snapshots.rs:28-37"
    ),
    "qdrant snapshot create": Fact(
        ("POST", "/collections/{name}/snapshots"), f"{QDRANT} src/actix/api/snapshot_api.rs:149-163 (wait default true)"
    ),
    "qdrant snapshot delete": Fact(
        ("DELETE", "/collections/{name}/snapshots/{snapshot_name}"), f"{QDRANT} src/actix/api/snapshot_api.rs:302-322"
    ),
    "qdrant snapshot download": Fact(
        ("GET", "/collections/{name}/snapshots/{snapshot_name}"), f"{QDRANT} src/actix/api/snapshot_api.rs:240-256"
    ),
    "qdrant snapshot upload": Fact(
        ("POST", "/collections/{name}/snapshots/upload", "snapshot"),
        f"{QDRANT} src/actix/api/snapshot_api.rs:52-55,165-212 (multipart field `snapshot`; saved, then recovered)",
    ),
    "qdrant snapshot recover": Fact(
        ("PUT", "/collections/{name}/snapshots/recover"), f"{QDRANT} src/actix/api/snapshot_api.rs:214-238"
    ),
    "qdrant recover schemes": Fact(
        ("file", "http", "https"),
        f"{QDRANT} lib/storage/src/content_manager/snapshots/download.rs:66-96 (file: must exist, else 400)",
    ),
    "qdrant snapshot priorities": Fact(
        ("no_sync", "snapshot", "replica"),
        f"{QDRANT} lib/collection/src/operations/snapshot_ops.rs:18-28 (snake_case; shard_transfer is serde(skip))",
    ),
    "qdrant upsert points": Fact(("PUT", "/collections/{name}/points"), f"{QDRANT} src/actix/api/update_api.rs:36"),
    # ------------------------------------------------------------ Prometheus (the official image)
    "prometheus image": Fact(
        {"user": "nobody", "workdir": "/prometheus", "entrypoint": "/bin/prometheus", "shell": "busybox"},
        f"{PROMETHEUS} Dockerfile:3 (FROM busybox), 17-24 (WORKDIR, USER nobody, ENTRYPOINT)",
    ),
    "qdrant scroll points": Fact(
        ("POST", "/collections/{name}/points/scroll"), f"{QDRANT} src/actix/api/retrieve_api.rs:132"
    ),
}


def server_value(name: str) -> object:
    return SERVER_FACTS[name].value
