"""Stand-in model server for tests: speaks like vLLM, TEI or whisper-openai-api, runs no model.

    model_server.py vllm    [vLLM flags]     e.g. --model M --served-model-name N --host H --port P
    model_server.py tei     [TEI 1.8 flags]  e.g. --model-id M --port 80
    model_server.py whisper [whisper flags]  e.g. --model M --port 8000

The real images cannot be pulled on test machines. This one process copies what a client or a
health check sees of each server (flags, routes, API-key rules, answer shapes); answers are
deterministic fakes. Behaviour knobs (environment):
  STANDIN_START_DELAY  seconds to wait before binding (weights loading); GET /standin/state reports
                       the load window: started_at (the server's start) and listening_at (bound)
  STANDIN_LOAD_SECONDS bind that many seconds after the server started (its own start included; a
                       wait before the server's exec, plan/startup.py, not)
  STANDIN_FAIL         never-healthy: /health answers 503 forever; exit: exit 1 after the delay;
                       wrong-shape: healthy, but model answers have the wrong shape
  STANDIN_RESPONSE_DELAY  vllm: seconds each chat completion takes (generation); its answer's
                       system_fingerprint (null in vLLM's) names the host (container) that answered
  STANDIN_HOST         whisper only: address to bind (the real one always binds 0.0.0.0)
  STANDIN_EMBED_DIM    TEI: embedding dimension (default from the model id, else 1024)
  STANDIN_TEI_MODEL_TYPE  TEI: "embedding" or "reranker" (default: guessed from the model id)
  STANDIN_TEI_VERSION  TEI: "1.8" (default, as albert_deploy.catalog pins) rejects
                       --served-model-name like the real 1.8 does; "1.9" accepts it
"""

from __future__ import annotations

import argparse
import hashlib
import io
import ipaddress
import json
import os
import random
import socket
import sys
import time
import wave
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common
import facts

F = facts.server_value

# Embedding sizes of known models; TEI reports what the model has, so the stand-in does too.
EMBED_DIMS = {
    "intfloat/multilingual-e5-large": 1024,
    "intfloat/multilingual-e5-base": 768,
    "intfloat/multilingual-e5-small": 384,
    "BAAI/bge-m3": 1024,
}

# TEI 1.8.3's complete flag set (facts: router/src/main.rs); clap rejects anything else.
TEI_VALUE_FLAGS = set(F("tei value flags"))
TEI_BOOL_FLAGS = set(F("tei bool flags"))
TEI_REFUSED_FLAGS = set(F("tei refused flags"))
# Paths served without the key when one is set; vLLM instead guards one prefix.
VLLM_GUARDED = str(F("vllm guarded prefix"))
OPEN_PATHS = {"tei": set(F("tei open paths")), "whisper": set(F("whisper open paths"))}


@dataclass
class Server:
    kind: str
    model: str  # what the server loads
    served: list[str]  # names clients must use (vLLM), else [model]
    host: str
    port: int
    api_key: str | None
    fail: str = ""
    reranker: bool = False
    dim: int = 1024
    max_len: int = 4096
    started_at: float = field(default_factory=time.time)
    listening_at: float | None = None
    # What /metrics reports: answered requests, tokens, and each request's duration in seconds.
    prompt_tokens: int = 0
    generated_tokens: int = 0
    durations: list[float] = field(default_factory=list)


# ---------------------------------------------------------------- flags, as each real server reads them
# The vLLM flags the stand-in reads (it accepts the others, unread, like the real one).
VLLM_READ = ("--model", "--served-model-name", "--host", "--port", "--api-key", "--max-model-len")


def expand(name: str, known: tuple[str, ...] | set[str], abbreviates: bool) -> str:
    """The flag ``name`` stands for: itself, or where the parser abbreviates (facts: "<kind> abbreviations"),
    the one known flag it is a prefix of. The stand-in knows only the flags it reads, so a prefix that the
    real parser finds ambiguous among flags the stand-in does not read is not modelled."""
    if name in known or not abbreviates or name in ("-", "--"):
        return name
    matches = [flag for flag in known if flag.startswith(name)]
    return matches[0] if len(matches) == 1 else name


def parse_vllm(argv: list[str]) -> Server:
    """vLLM takes hundreds of flags: read the ones that matter, accept the rest like its parser would."""
    opts: dict[str, list[str]] = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            positional.append(arg)
            i += 1
            continue
        name, eq, inline = arg.partition("=")
        name = expand(name.replace("_", "-"), VLLM_READ, bool(F("vllm abbreviations")))  # FlexibleArgumentParser
        values = [inline] if eq else []
        i += 1
        while not eq and i < len(argv) and not argv[i].startswith("--"):
            values.append(argv[i])  # --served-model-name takes several; others one
            i += 1
            if name != "--served-model-name":
                break
        opts[name] = values
    served_flag, model_flag = F("vllm reported id flags")
    model = positional[0] if positional else (opts.get(model_flag) or [str(F("vllm default model"))])[0]
    served = opts.get(served_flag) or [model]
    return Server(
        kind="vllm",
        model=model,
        served=served,
        host=(opts.get("--host") or ["0.0.0.0"])[0],
        port=int((opts.get("--port") or [str(F("vllm port"))])[0]),
        api_key=(opts.get("--api-key") or [None])[0] or os.environ.get(str(F("vllm api key env"))) or None,
        max_len=int((opts.get("--max-model-len") or ["4096"])[0]),
    )


def parse_tei(argv: list[str]) -> Server:
    """clap-like: every flag also reads its environment variable (MODEL_ID, PORT, API_KEY, ...)."""
    values: dict[str, str] = {}
    version = os.environ.get("STANDIN_TEI_VERSION", "1.8")
    value_flags = TEI_VALUE_FLAGS | (TEI_REFUSED_FLAGS if version != "1.8" else set())
    known = TEI_BOOL_FLAGS | value_flags
    i = 0
    while i < len(argv):
        name, eq, inline = argv[i].partition("=")
        name = expand(name, known, bool(F("tei abbreviations")))  # clap: whole flags only
        short = str(F("tei port short flag"))
        if not eq and name.startswith(short) and name != short and name[1] != "-":
            name, eq, inline = short, "=", name[len(short) :]  # clap's `-p9000`
        if name in TEI_BOOL_FLAGS:
            values[name] = "true"
        elif name in value_flags and (eq or i + 1 < len(argv)):
            values[name] = inline if eq else argv[i + 1]
            i += 0 if eq else 1
        else:
            # clap's own wording; exit status 2 like the real router.
            print(
                f"error: unexpected argument '{name}' found\n\nUsage: text-embeddings-router [OPTIONS]", file=sys.stderr
            )
            raise SystemExit(2)
        i += 1

    def get(flag: str, default: str | None) -> str | None:
        env = flag.lstrip("-").replace("-", "_").upper()
        return values.get(flag) or os.environ.get(env) or default

    model = get(str(F("tei reported id flag")), "BAAI/bge-large-en-v1.5") or ""
    hostname = get("--hostname", "0.0.0.0") or "0.0.0.0"
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        hostname = "0.0.0.0"  # Docker's HOSTNAME (a container id) is no IP: TEI falls back too
    kind_env = os.environ.get("STANDIN_TEI_MODEL_TYPE", "")
    reranker = kind_env == "reranker" or (not kind_env and "rerank" in model.lower())
    return Server(
        kind="tei",
        model=model,
        served=[get("--served-model-name", model) or model],
        host=hostname,
        port=int(values.get("-p") or get("--port", str(F("tei router default port"))) or 0),
        api_key=values.get("--api-key") or os.environ.get(str(F("tei api key env"))) or None,
        reranker=reranker,
        dim=int(os.environ.get("STANDIN_EMBED_DIM") or EMBED_DIMS.get(model, 1024)),
        max_len=512,
    )


def parse_whisper(argv: list[str]) -> Server:
    """app/utils/args.py of whisper-openai-api: argparse, so unknown flags are an error (status 2)."""
    parser = argparse.ArgumentParser(prog="app/main.py", allow_abbrev=bool(F("whisper abbreviations")))
    defaults = {
        "--model": F("whisper default model"),
        "--port": F("whisper port"),
        "--root-path": None,
        "--hf-token": False,
    }
    for flag in F("whisper flags"):
        if flag in defaults:
            parser.add_argument(flag, type=int if flag == "--port" else str, default=defaults[flag])
        else:
            parser.add_argument(flag, action="store_true")
    args = parser.parse_args(argv)
    model = vars(args)[str(F("whisper reported id flag")).lstrip("-").replace("-", "_")]
    return Server(
        kind="whisper",
        model=model,
        served=[model],
        host=os.environ.get("STANDIN_HOST", str(F("whisper bind host"))),
        port=args.port,
        api_key=os.environ.get(str(F("whisper api key env"))) or None,
    )


PARSERS = {"vllm": parse_vllm, "tei": parse_tei, "whisper": parse_whisper}


# ---------------------------------------------------------------- fake answers
def fake_vector(text: str, dim: int) -> list[float]:
    """A unit vector that depends only on the text, so equal inputs embed equally."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    vec = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in vec]


def tokens(text: str) -> int:
    return max(1, len(text.split()))


class ModelHandler(common.Handler):
    @property
    def srv(self) -> Server:
        return self.server.state

    def route(self, method: str, path: str) -> None:
        s = self.srv
        self.standin_name = s.kind
        if path == "/standin/state":  # stand-in only: lets tests compare start times
            return self.send_json(
                200,
                {
                    "kind": s.kind,
                    "model": s.model,
                    "served": s.served,
                    "started_at": s.started_at,
                    "listening_at": s.listening_at,
                },
            )
        if not self.authorized(path):
            return
        if path == "/health" and method == "GET":
            return self.send_raw(503 if s.fail == "never-healthy" else 200, b"", "application/json")
        if path == "/metrics" and method == "GET" and F(f"{s.kind} metrics"):
            return self.send_raw(200, metrics_text(s).encode(), "text/plain; version=0.0.4; charset=utf-8")
        handler = getattr(self, f"{s.kind}_routes")
        handler(method, path)

    def authorized(self, path: str) -> bool:
        """vLLM guards one prefix (/v1); TEI and whisper every path but their open ones (facts.py)."""
        s = self.srv
        if not s.api_key:
            return True
        guarded = path.startswith(VLLM_GUARDED) if s.kind == "vllm" else path not in OPEN_PATHS[s.kind]
        token = self.bearer()
        if not guarded or token == s.api_key:
            return True
        if s.kind == "vllm":
            self.send_json(401, {"error": "Unauthorized"})
        elif s.kind == "tei":
            self.send_raw(401, b"", "text/plain")
        elif token is None:
            self.send_json(403, {"detail": "Not authenticated"})  # FastAPI's HTTPBearer
        else:
            self.send_json(401, {"detail": "Invalid API key."})
        return False

    # ---- vLLM
    def vllm_routes(self, method: str, path: str) -> None:
        s = self.srv
        if path == "/v1/models" and method == "GET":
            data = [
                {
                    "id": n,
                    "object": "model",
                    "created": int(s.started_at),
                    "owned_by": "vllm",
                    "root": s.model,
                    "parent": None,
                    "max_model_len": s.max_len,
                }
                for n in s.served
            ]
            return self.send_json(200, {"object": "list", "data": data})
        if path == "/v1/chat/completions" and method == "POST":
            return self.chat()
        self.send_json(404, {"detail": "Not Found"})

    def chat(self) -> None:
        s = self.srv
        body = self.json_body()
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            return self.send_json(
                400,
                {
                    "error": {
                        "message": "messages: a non-empty list is required",
                        "type": "BadRequestError",
                        "param": None,
                        "code": 400,
                    }
                },
            )
        if body.get("model") not in s.served:
            message = f"The model `{body.get('model')}` does not exist."
            return self.send_json(
                404, {"error": {"message": message, "type": "NotFoundError", "param": "model", "code": 404}}
            )
        if s.fail == "wrong-shape":
            return self.send_json(200, {"id": "chatcmpl-standin", "object": "chat.completion", "choices": []})
        delay = float(os.environ.get("STANDIN_RESPONSE_DELAY") or 0)
        started = time.monotonic()
        time.sleep(delay)
        words = f"Stand-in answer from {body['model']}.".split()
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or len(words)
        content = " ".join(words[: max(1, int(limit))])
        if body.get("stream") is True:
            return self.stream_chat(body["model"], content.split(), "length" if int(limit) < len(words) else "stop")
        prompt = sum(tokens(str(m.get("content", ""))) for m in body["messages"] if isinstance(m, dict))
        s.prompt_tokens, s.generated_tokens = s.prompt_tokens + prompt, s.generated_tokens + tokens(content)
        s.durations.append(time.monotonic() - started)
        self.send_json(
            200,
            {
                "id": "chatcmpl-standin",
                "object": "chat.completion",
                "created": int(time.time()),
                "system_fingerprint": socket.gethostname() if delay else None,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "length" if int(limit) < len(words) else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": tokens(content),
                    "total_tokens": prompt + tokens(content),
                },
            },
        )

    def stream_chat(self, model: str, words: list[str], finish: str) -> None:
        """Server-sent events as vLLM sends them (facts: "vllm stream format"): a role chunk, one chunk
        per word, the finish chunk, then [DONE]; STANDIN_STREAM_INTERVAL seconds apart (default 0.2)."""
        interval = float(os.environ.get("STANDIN_STREAM_INTERVAL") or 0.2)
        self.send_response(200)
        self.send_header("Content-Type", F("vllm stream format")[0])
        self.end_headers()  # HTTP/1.0: the body ends when the connection closes
        created = int(time.time())
        deltas = [({"role": "assistant", "content": ""}, None)]
        deltas += [({"content": w if i == 0 else " " + w}, None) for i, w in enumerate(words)]
        deltas.append(({}, finish))
        for delta, reason in deltas:
            chunk = {"id": "chatcmpl-standin", "object": F("vllm stream format")[1], "created": created, "model": model,
                     "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]}  # fmt: skip
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()
            time.sleep(interval)
        self.wfile.write(F("vllm stream format")[2].encode())
        self.wfile.flush()

    # ---- TEI
    def tei_routes(self, method: str, path: str) -> None:
        s = self.srv
        if path == "/info" and method == "GET":
            model_type = (
                {"reranker": {"id2label": {"0": "LABEL_0"}}} if s.reranker else {"embedding": {"pooling": "mean"}}
            )
            return self.send_json(
                200,
                {
                    "model_id": s.model,
                    "model_sha": None,
                    "model_dtype": "float16",
                    "model_type": model_type,
                    "max_concurrent_requests": 512,
                    "max_input_length": s.max_len,
                    "max_batch_tokens": 16384,
                    "max_batch_requests": None,
                    "max_client_batch_size": 32,
                    "auto_truncate": False,
                    "tokenization_workers": 2,
                    "version": os.environ.get("STANDIN_TEI_VERSION", "1.8") + ".3",
                    "sha": None,
                    "docker_label": None,
                },
            )
        if path in ("/v1/embeddings", "/embeddings", "/embed") and method == "POST":
            return self.embed(openai=path != "/embed")
        if path == "/rerank" and method == "POST":
            return self.rerank()
        self.send_raw(404, b"", "text/plain")

    def model_error(self, what: str) -> None:
        # TEI answers 424 when the loaded model cannot do what the route asks.
        self.send_json(
            424, {"error": f"Backend error: model {self.srv.model} does not support {what}", "error_type": "backend"}
        )

    def embed(self, openai: bool) -> None:
        s = self.srv
        body = self.json_body()
        key = "input" if openai else "inputs"
        texts = body.get(key) if isinstance(body, dict) else None
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return self.send_json(
                422, {"error": f"`{key}` must be a string or a non-empty list of strings", "error_type": "validation"}
            )
        if s.reranker:
            return self.model_error("embeddings")
        started = time.monotonic()
        vectors = [fake_vector(t, s.dim) for t in texts]
        s.durations.append(time.monotonic() - started)
        if s.fail == "wrong-shape":
            vectors = [[str(v) for v in vec] for vec in vectors]
        if not openai:
            return self.send_json(200, vectors)
        used = sum(tokens(t) for t in texts)
        data = [{"object": "embedding", "embedding": v, "index": i} for i, v in enumerate(vectors)]
        self.send_json(
            200,
            {"object": "list", "data": data, "model": s.model, "usage": {"prompt_tokens": used, "total_tokens": used}},
        )

    def rerank(self) -> None:
        body = self.json_body()
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("query"), str)
            or not isinstance(body.get("texts"), list)
            or not body["texts"]
        ):
            return self.send_json(
                422, {"error": "`query` (string) and `texts` (non-empty list) are required", "error_type": "validation"}
            )
        if not self.srv.reranker:
            return self.model_error("rerank")
        query = set(body["query"].lower().split())
        scores = [(len(query & set(str(t).lower().split())) + 1) / (len(str(t).split()) + 2) for t in body["texts"]]
        ranked = sorted(range(len(scores)), key=lambda i: -scores[i])
        if self.srv.fail == "wrong-shape":
            return self.send_json(200, [{"index": i} for i in ranked])
        out = [
            {"index": i, "score": round(scores[i], 6)} | ({"text": body["texts"][i]} if body.get("return_text") else {})
            for i in ranked
        ]
        self.send_json(200, out)

    # ---- whisper
    def whisper_routes(self, method: str, path: str) -> None:
        s = self.srv
        if path.startswith("/v1/models") and method == "GET":
            item = {
                "object": "model",
                "id": s.model,
                "created": int(time.time()),
                "owned_by": "whisper-openai-api",
                "type": "automatic-speech-recognition",
            }
            return self.send_json(200, item if path.startswith("/v1/models/") else {"object": "list", "data": [item]})
        if path == "/v1/audio/transcriptions" and method == "POST":
            return self.transcribe()
        self.send_json(404, {"detail": "Not Found"})

    def transcribe(self) -> None:
        s = self.srv
        try:
            fields = common.parse_multipart(self.body(), self.headers.get("Content-Type", ""))
        except ValueError as err:
            return self.send_json(422, {"detail": [{"loc": ["body"], "msg": str(err), "type": "value_error"}]})
        if "file" not in fields or not fields["file"][0]:
            return self.send_json(
                422, {"detail": [{"loc": ["body", "file"], "msg": "Field required", "type": "missing"}]}
            )
        model = fields.get("model", (s.model.encode(), None, None))[0].decode()
        if model != s.model:
            return self.send_json(404, {"detail": "Model not found."})
        audio = fields["file"][0]
        seconds = None
        if audio.startswith(b"RIFF"):  # a WAV must decode, as the real pipeline's ffmpeg requires
            try:
                with wave.open(io.BytesIO(audio)) as w:
                    seconds = w.getnframes() / w.getframerate()
            except (wave.Error, EOFError, ZeroDivisionError) as err:
                return self.send_json(500, {"detail": f"could not decode audio: {err}"})
        text = (
            f"Stand-in transcription of {seconds:.2f} s of audio." if seconds is not None else "Stand-in transcription."
        )
        if s.fail == "wrong-shape":
            return self.send_json(200, {"transcript": text})
        if fields.get("response_format", (b"json", None, None))[0] == b"text":
            return self.send_text(200, text)
        self.send_json(200, {"text": text})


# ---------------------------------------------------------------- /metrics, in each server's text format
def _histogram(name: str, labels: str, buckets: list[float], values: list[float]) -> list[str]:
    sep = "," if labels else ""
    lines = [f'{name}_bucket{{{labels}{sep}le="{b!r}"}} {sum(v <= b for v in values)}' for b in buckets]
    lines.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {len(values)}')
    tail = f"{{{labels}}}" if labels else ""
    return [*lines, f"{name}_sum{tail} {sum(values)!r}", f"{name}_count{tail} {len(values)}"]


def metrics_text(s: Server) -> str:
    """vLLM: prometheus_client's rendering (counters gain _total; labels model_name, engine); TEI:
    metrics-exporter-prometheus's (no model label, 35 geometric duration buckets). facts.py has the names."""
    if s.kind == "vllm":
        m = F("vllm metrics")
        labels = f'model_name="{s.served[0]}",engine="0"'
        gen, prompt = m["counters"]  # type: ignore[index]
        kv, running = m["gauges"]  # type: ignore[index]
        latency = m["histogram"]  # type: ignore[index]
        lines = [f"# TYPE {gen}_total counter", f"{gen}_total{{{labels}}} {float(s.generated_tokens)!r}",
                 f"# TYPE {prompt}_total counter", f"{prompt}_total{{{labels}}} {float(s.prompt_tokens)!r}",
                 f"# TYPE {kv} gauge", f"{kv}{{{labels}}} 0.0", f"# TYPE {running} gauge", f"{running}{{{labels}}} 0.0",
                 f"# TYPE {latency} histogram",
                 *_histogram(latency, labels, list(F("vllm latency buckets")), s.durations)]  # type: ignore[arg-type]  # fmt: skip
    else:
        m = F("tei metrics")
        count, success = m["counter"]  # type: ignore[index]
        duration = m["histogram"]  # type: ignore[index]
        buckets = [1e-5 * 1.5**k for k in range(1, 36)]
        n = len(s.durations)
        lines = [f"# TYPE {count} counter", f'{count}{{method="single"}} {n}', f"# TYPE {success} counter",
                 f'{success}{{method="single"}} {n}', f"# TYPE {duration} histogram",
                 *_histogram(duration, "", buckets, s.durations)]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in PARSERS:
        print(f"usage: model_server.py {{{'|'.join(PARSERS)}}} [server flags]", file=sys.stderr)
        raise SystemExit(2)
    server = PARSERS[argv[0]](argv[1:])
    common.exit_on_signals()
    # The real servers bind only once loaded (facts: "<kind> listens once loaded"), so the load,
    # simulated by STANDIN_START_DELAY, comes first; [started_at, listening_at] is the load window
    # that /standin/state reports (tests/test_coldstart_docker.py compares the windows).
    if not F(f"{server.kind} listens once loaded"):
        raise SystemExit(f"{server.kind}: the facts say it listens before loading; this stand-in cannot")
    server.started_at = time.time() - common.load_age()
    server.fail = common.start_knobs(server.kind)
    server.listening_at = time.time()
    common.log(
        server.kind,
        f"model {server.model} served as {', '.join(server.served)}; key {'set' if server.api_key else 'none'}",
    )
    common.serve(ModelHandler, server.host, server.port, server.kind, state=server)


if __name__ == "__main__":
    main()
