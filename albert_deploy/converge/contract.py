"""Contract checker behind ``albert-deploy check``: does each model answer like its type promises?

Standard library only, and runnable on its own, because the reconciler runs it *inside* a
container of the stack (the API image has python3, not this package) to reach model servers that
publish no port:

    python3 check.py [--timeout S] [job.json]  < job.json   ->  JSON results on stdout

The host imports it too (``run_checks``) for external endpoints and the API's published port.

A job: ``{"name", "type", "url", "served_name", "key", "via"}`` where ``url`` is the server (or
API) root without ``/v1``, ``key`` a bearer token or null, ``via`` "server" or "api"; optional
``timeout`` (seconds) and ``dimension`` (expected embedding size). The input may be a list of jobs
or ``{"jobs": [...], "timeout": S}``. One result per job: ``{"name", "via", "ok", "detail"}``, plus
``"dimension"`` for embeddings. Exit status: 0 all passed, 1 some failed, 2 unreadable input.
"""

from __future__ import annotations

import io
import json
import math
import secrets
import socket
import sys
import urllib.error
import urllib.request
import wave
from typing import Any

TEXT_GENERATION = "text-generation"
EMBEDDINGS = "text-embeddings-inference"
SPEECH = "automatic-speech-recognition"
RERANK = "text-classification"
DEFAULT_TIMEOUT = 10.0
RERANK_TEXTS = ["Paris est la capitale de la France.", "Le chat dort sur le canapé."]

# Never route through an HTTP(S)_PROXY from the environment: these are stack-internal addresses.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class CheckError(Exception):
    """One failed check; ``str()`` is the detail reported to the user."""


def make_wav(seconds: float = 0.5, rate: int = 16000) -> bytes:
    """A valid 16 kHz mono 16-bit PCM WAV: a quiet 440 Hz tone (silence may be rejected by some decoders)."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        sample = int(3000 * math.sin(2 * math.pi * 440 * i / rate))
        frames += sample.to_bytes(2, "little", signed=True)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return buf.getvalue()


def multipart(fields: dict[str, str], file_field: str, filename: str, data: bytes, ctype: str) -> tuple[bytes, str]:
    """multipart/form-data by hand (the stdlib has no encoder): (body, Content-Type)."""
    boundary = "albertdeploy" + secrets.token_hex(12)
    out = bytearray()
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    out += f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'.encode()
    out += f"Content-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _post(url: str, key: str | None, body: bytes, ctype: str, timeout: float) -> Any:
    """POST and decode a JSON answer; any transport or HTTP failure becomes a CheckError."""
    headers = {"Content-Type": ctype, "Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as err:
        text = err.read(300).decode("utf-8", "replace").strip()
        raise CheckError(f"HTTP {err.code} from POST {url}" + (f": {text}" if text else "")) from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, (TimeoutError, socket.timeout)):
            raise CheckError(f"no answer from {url} within {timeout:g} s") from None
        raise CheckError(f"cannot reach {url}: {err.reason}") from None
    except TimeoutError:
        raise CheckError(f"no answer from {url} within {timeout:g} s") from None
    except (OSError, ValueError) as err:  # reset connections, malformed URLs
        raise CheckError(f"cannot reach {url}: {err}") from None
    try:
        return json.loads(raw)
    except ValueError:
        raise CheckError(f"answer from {url} is not JSON: {raw[:120]!r}") from None


def _post_json(url: str, key: str | None, payload: dict[str, Any], timeout: float) -> Any:
    return _post(url, key, json.dumps(payload).encode(), "application/json", timeout)


def _shape(ok: bool, what: str) -> None:
    if not ok:
        raise CheckError(f"wrong answer shape: {what}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------- one check per model type
def check_chat(root: str, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    payload = {
        "model": job["served_name"],
        "messages": [{"role": "user", "content": "Réponds par un seul mot : bonjour."}],
        "max_tokens": 8,
        "temperature": 0,
        "stream": False,
    }
    answer = _post_json(root + "/v1/chat/completions", job.get("key"), payload, timeout)
    choices: Any = answer.get("choices") if isinstance(answer, dict) else None
    _shape(isinstance(choices, list) and len(choices) > 0 and isinstance(choices[0], dict), "no choices[0]")
    message = choices[0].get("message")
    _shape(
        isinstance(message, dict) and isinstance(message.get("content"), str),
        "choices[0].message.content is not a string",
    )
    return {"detail": f"chat completion answered ({len(message['content'])} characters)"}


def check_embeddings(root: str, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    payload = {"model": job["served_name"], "input": "albert-deploy contract check"}
    answer = _post_json(root + "/v1/embeddings", job.get("key"), payload, timeout)
    data: Any = answer.get("data") if isinstance(answer, dict) else None
    _shape(isinstance(data, list) and len(data) > 0 and isinstance(data[0], dict), "no data[0]")
    vector = data[0].get("embedding")
    _shape(isinstance(vector, list) and len(vector) > 0, "data[0].embedding is not a non-empty list")
    _shape(all(_number(v) for v in vector), "data[0].embedding holds something other than numbers")
    expected = job.get("dimension")
    if expected is not None and len(vector) != expected:
        raise CheckError(f"embedding dimension is {len(vector)}, expected {expected}")
    return {"detail": f"embedding of dimension {len(vector)}", "dimension": len(vector)}


def check_transcription(root: str, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    body, ctype = multipart(
        {"model": job["served_name"], "response_format": "json"}, "file", "check.wav", make_wav(), "audio/wav"
    )
    answer = _post(root + "/v1/audio/transcriptions", job.get("key"), body, ctype, timeout)
    _shape(isinstance(answer, dict) and isinstance(answer.get("text"), str), "no text string")
    return {"detail": f"transcription answered ({len(answer['text'])} characters)"}


def check_rerank(root: str, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    if job["via"] == "api":  # Albert's own route and body; it answers {"data": [...]}
        payload = {"model": job["served_name"], "prompt": "capitale de la France", "input": RERANK_TEXTS}
        answer = _post_json(root + "/v1/rerank", job.get("key"), payload, timeout)
        _shape(isinstance(answer, dict), "not an object with data")
        scores = answer.get("data")
    else:  # TEI-style /rerank answers a bare list
        payload = {"query": "capitale de la France", "texts": RERANK_TEXTS}
        scores = _post_json(root + "/rerank", job.get("key"), payload, timeout)
    _shape(isinstance(scores, list), "scores are not a list")
    _shape(all(isinstance(s, dict) and _number(s.get("score")) for s in scores), "an item has no numeric score")
    indexes = sorted(s.get("index") for s in scores if isinstance(s.get("index"), int))
    _shape(indexes == list(range(len(RERANK_TEXTS))), f"indexes {indexes} do not cover the {len(RERANK_TEXTS)} texts")
    return {"detail": f"{len(scores)} rerank scores"}


CHECKS = {TEXT_GENERATION: check_chat, EMBEDDINGS: check_embeddings, SPEECH: check_transcription, RERANK: check_rerank}


def check_job(job: Any, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Run one job; never raises: a failure is ``ok: false`` with a one-line ``detail``."""
    if not isinstance(job, dict):
        return {"name": "?", "via": "?", "ok": False, "detail": "invalid job: not an object"}
    result: dict[str, Any] = {"name": str(job.get("name", "?")), "via": job.get("via", "server")}
    problem = _invalid(job)
    if problem:
        return {**result, "ok": False, "detail": f"invalid job: {problem}"}
    job = {**job, "via": result["via"]}
    try:
        found = CHECKS[job["type"]](job["url"].rstrip("/"), job, float(job.get("timeout") or timeout))
    except CheckError as err:
        return {**result, "ok": False, "detail": str(err)}
    except Exception as err:  # a checker bug must not lose the other jobs' results
        return {**result, "ok": False, "detail": f"checker error: {type(err).__name__}: {err}"}
    return {**result, "ok": True, **found}


def _invalid(job: dict[str, Any]) -> str | None:
    if job.get("type") not in CHECKS:
        return f"type must be one of {', '.join(CHECKS)}, got {job.get('type')!r}"
    for key in ("url", "served_name"):
        if not isinstance(job.get(key), str) or not job[key]:
            return f"{key} must be a non-empty string"
    if not job["url"].startswith(("http://", "https://")):
        return f"url must start with http:// or https://, got {job['url']!r}"
    if job.get("via", "server") not in ("server", "api"):
        return f"via must be 'server' or 'api', got {job.get('via')!r}"
    if job.get("key") is not None and not isinstance(job["key"], str):
        return "key must be a string or null"
    if job.get("timeout") is not None and not (_number(job["timeout"]) and job["timeout"] > 0):
        return "timeout must be a positive number of seconds"
    if job.get("dimension") is not None and not (isinstance(job["dimension"], int) and job["dimension"] > 0):
        return "dimension must be a positive integer"
    return None


def run_checks(jobs: list[Any], timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
    """One result per job, in order."""
    return [check_job(job, timeout) for job in jobs]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    timeout = DEFAULT_TIMEOUT
    if "--timeout" in args:
        at = args.index("--timeout")
        try:
            timeout = float(args[at + 1])
        except (IndexError, ValueError):
            print("check.py: --timeout needs a number of seconds", file=sys.stderr)
            return 2
        del args[at : at + 2]
    try:
        if args:
            with open(args[0], encoding="utf-8") as source:
                data = json.loads(source.read())
        else:
            data = json.loads(sys.stdin.read())
    except (OSError, ValueError) as err:
        print(f"check.py: cannot read jobs: {err}", file=sys.stderr)
        return 2
    if isinstance(data, dict):
        if data.get("timeout") is not None and not _number(data["timeout"]):
            print("check.py: timeout must be a number of seconds", file=sys.stderr)
            return 2
        timeout = float(data.get("timeout") or timeout)
        data = data.get("jobs")
    if not isinstance(data, list):
        print('check.py: expected a list of jobs or {"jobs": [...]}', file=sys.stderr)
        return 2
    results = run_checks(data, timeout)
    json.dump(results, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
