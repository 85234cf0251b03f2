"""albert_deploy/converge/contract.py against the model stand-ins run as plain local processes (no Docker).

Servers bind 127.0.0.1 on free ports; the Albert API stand-in (0.0.3 format, which needs no
database) sits in front of them for the ``via: api`` checks.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from albert_deploy.converge import contract as check

REPO = Path(__file__).resolve().parent.parent
MODEL_SERVER = REPO / "tests" / "standins" / "model_server.py"
ALBERT_API = REPO / "tests" / "standins" / "albert_api.py"
CHECK_SCRIPT = REPO / "albert_deploy" / "converge" / "contract.py"
TG, EMB, ASR, RR = check.TEXT_GENERATION, check.EMBEDDINGS, check.SPEECH, check.RERANK
E5, RERANKER, WHISPER = "intfloat/multilingual-e5-large", "BAAI/bge-reranker-v2-m3", "openai/whisper-large-v3-turbo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen[bytes], log: IO[bytes], key: str | None = None) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise AssertionError(f"the stand-in for {url} exited: {log.read().decode(errors='replace')}")
        try:
            opener.open(urllib.request.Request(url, headers=headers), timeout=1).close()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture(scope="module")
def start() -> Iterator[Callable[..., str]]:
    """Start a stand-in process; returns its root URL. All are stopped at the end of the module."""
    procs: list[subprocess.Popen[bytes]] = []
    logs = contextlib.ExitStack()

    def run(kind: str, *flags: str, env: dict[str, str] | None = None, key: str | None = None) -> str:
        port = free_port()
        full_env = {**os.environ, "STANDIN_HOST": "127.0.0.1", **(env or {})}
        if kind == "api":
            argv = [str(ALBERT_API), "--host", "127.0.0.1", "--port", str(port), *flags]
            health = f"http://127.0.0.1:{port}/"
        else:
            port_flags = (
                ["--host", "127.0.0.1"] if kind == "vllm" else ["--hostname", "127.0.0.1"] if kind == "tei" else []
            )
            argv = [str(MODEL_SERVER), kind, *flags, *port_flags, "--port", str(port)]
            health = f"http://127.0.0.1:{port}/health"
        # A file, not a pipe: a full pipe would block the server. Closed by the ExitStack.
        log = logs.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, *argv], env=full_env, stdout=subprocess.DEVNULL, stderr=log)
        procs.append(proc)
        wait_until_up(health, proc, log, key if kind == "whisper" else None)
        return f"http://127.0.0.1:{port}"

    yield run
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=5)
    logs.close()


@pytest.fixture(scope="module")
def servers(start: Callable[..., str]) -> dict[str, str]:
    return {
        "vllm": start(
            "vllm",
            "--model",
            "AgentPublic/guillaumetell-7b",
            "--served-model-name",
            "guillaumetell-7b",
            env={"VLLM_API_KEY": "vk"},
        ),
        "tei": start("tei", "--model-id", E5, "--auto-truncate", env={"API_KEY": "tk"}),
        "rerank": start("tei", "--model-id", RERANKER),
        "whisper": start("whisper", "--model", WHISPER, env={"API_KEY": "wk"}, key="wk"),
    }


def job(type_: str, url: str, served: str, key: str | None, via: str = "server", **extra: object) -> dict[str, object]:
    return {"name": f"{type_}-job", "type": type_, "url": url, "served_name": served, "key": key, "via": via, **extra}


def good_jobs(servers: dict[str, str]) -> list[dict[str, object]]:
    return [
        job(TG, servers["vllm"], "guillaumetell-7b", "vk"),
        job(EMB, servers["tei"], E5, "tk"),
        job(ASR, servers["whisper"], WHISPER, "wk"),
        job(RR, servers["rerank"], RERANKER, None),
    ]


# ---------------------------------------------------------------- passing checks
def test_each_type_passes_on_its_server(servers: dict[str, str]) -> None:
    results = check.run_checks(good_jobs(servers), timeout=5)
    assert [r["ok"] for r in results] == [True] * 4, results
    assert [r["name"] for r in results] == [f"{t}-job" for t in (TG, EMB, ASR, RR)]
    assert all(r["via"] == "server" for r in results)
    assert results[1]["dimension"] == 1024
    assert "dimension" not in results[0]


def test_an_unexpected_embedding_dimension_fails(servers: dict[str, str]) -> None:
    (result,) = check.run_checks([job(EMB, servers["tei"], E5, "tk", dimension=768)])
    assert not result["ok"]
    assert "1024, expected 768" in result["detail"]


def test_every_type_passes_through_the_api(start: Callable[..., str], servers: dict[str, str], tmp_path: Path) -> None:
    config = {
        "internet": {"default_language_model": "guillaumetell-7b", "default_embeddings_model": E5},
        "models": {"aliases": {"guillaumetell-7b": ["llm"]}},
        "clients": {
            "models": [
                {"url": servers["vllm"] + "/v1", "type": TG, "key": "vk"},
                {"url": servers["tei"] + "/v1", "type": EMB, "key": "tk"},
                {"url": servers["whisper"] + "/v1", "type": ASR, "key": "wk"},
                {"url": servers["rerank"] + "/v1", "type": RR},
            ]
        },
    }
    (tmp_path / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    api = start("api", "--default-config", str(tmp_path / "config.yml"))
    jobs = [
        job(TG, api, "llm", None, "api"),  # an alias, resolved by the API
        job(EMB, api, E5, None, "api"),
        job(ASR, api, WHISPER, None, "api"),
        job(RR, api, RERANKER, None, "api"),
    ]
    results = check.run_checks(jobs, timeout=5)
    assert [r["ok"] for r in results] == [True] * 4, results
    assert results[1]["dimension"] == 1024


# ---------------------------------------------------------------- failing checks
@pytest.mark.parametrize(
    ("which", "type_", "served", "key", "status"),
    [
        ("vllm", TG, "guillaumetell-7b", "wrong", "HTTP 401"),
        ("vllm", TG, "guillaumetell-7b", None, "HTTP 401"),
        ("tei", EMB, E5, "wrong", "HTTP 401"),
        ("whisper", ASR, WHISPER, None, "HTTP 403"),  # whisper: no bearer at all
        ("whisper", ASR, WHISPER, "wrong", "HTTP 401"),
    ],
)
def test_a_wrong_key_fails(
    servers: dict[str, str], which: str, type_: str, served: str, key: str | None, status: str
) -> None:
    (result,) = check.run_checks([job(type_, servers[which], served, key)], timeout=5)
    assert not result["ok"]
    assert result["detail"].startswith(status), result["detail"]


def test_a_wrong_served_name_fails(servers: dict[str, str]) -> None:
    (result,) = check.run_checks([job(TG, servers["vllm"], "AgentPublic/guillaumetell-7b", "vk")], timeout=5)
    assert not result["ok"]
    assert "HTTP 404" in result["detail"] and "does not exist" in result["detail"]


def test_a_model_of_the_wrong_type_fails(servers: dict[str, str]) -> None:
    """An embeddings model checked as a reranker: TEI refuses (424)."""
    (result,) = check.run_checks([job(RR, servers["tei"], E5, "tk")], timeout=5)
    assert not result["ok"]
    assert "HTTP 424" in result["detail"]


@pytest.fixture(scope="module")
def wrong_shape(start: Callable[..., str]) -> dict[str, str]:
    env = {"STANDIN_FAIL": "wrong-shape"}
    return {
        TG: start("vllm", "--model", "m", env=env),
        EMB: start("tei", "--model-id", E5, env=env),
        ASR: start("whisper", "--model", WHISPER, env=env),
        RR: start("tei", "--model-id", RERANKER, env=env),
    }


@pytest.mark.parametrize(
    ("type_", "served", "what"),
    [
        (TG, "m", "no choices[0]"),
        (EMB, E5, "data[0].embedding holds something other than numbers"),
        (ASR, WHISPER, "no text string"),
        (RR, RERANKER, "an item has no numeric score"),
    ],
)
def test_a_wrong_answer_shape_fails(wrong_shape: dict[str, str], type_: str, served: str, what: str) -> None:
    (result,) = check.run_checks([job(type_, wrong_shape[type_], served, None)], timeout=5)
    assert not result["ok"]
    assert result["detail"] == f"wrong answer shape: {what}"


def test_a_server_that_is_down_fails() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    (result,) = check.run_checks([job(TG, url, "m", None)], timeout=2)
    assert not result["ok"]
    assert result["detail"].startswith(f"cannot reach {url}/v1/chat/completions")


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # accepts connections, never says a word
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        (result,) = check.run_checks([job(EMB, url, E5, None)], timeout=0.3)
    assert time.monotonic() - started < 3
    assert not result["ok"]
    assert result["detail"] == f"no answer from {url}/v1/embeddings within 0.3 s"


def test_a_job_timeout_overrides_the_default() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        (result,) = check.run_checks([job(RR, url, "r", None, timeout=0.2)], timeout=30)
    assert result["detail"].endswith("within 0.2 s")


def test_a_non_json_answer_fails() -> None:
    """A server answering HTML (a proxy's error page, say) is reported as such."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def answer() -> None:
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\n\r\n<html>")
            conn.close()

        threading.Thread(target=answer, daemon=True).start()
        (result,) = check.run_checks([job(TG, f"http://127.0.0.1:{listener.getsockname()[1]}", "m", None)], timeout=5)
    assert not result["ok"]
    assert "is not JSON" in result["detail"]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ({"type": "image-generation"}, "type must be one of"),
        ({"url": "vllm:8000"}, "url must start with http"),
        ({"url": None}, "url must be a non-empty string"),
        ({"served_name": ""}, "served_name must be a non-empty string"),
        ({"via": "proxy"}, "via must be 'server' or 'api'"),
        ({"key": 12}, "key must be a string or null"),
        ({"timeout": "soon"}, "timeout must be a positive number"),
        ({"dimension": 0}, "dimension must be a positive integer"),
    ],
)
def test_an_invalid_job_is_a_failed_result(bad: dict[str, object], problem: str) -> None:
    (result,) = check.run_checks([{**job(TG, "http://127.0.0.1:1", "m", None), **bad}])
    assert not result["ok"]
    assert result["detail"].startswith(f"invalid job: {problem}"), result["detail"]


def test_a_job_that_is_not_an_object() -> None:
    assert check.run_checks(["nope"]) == [
        {"name": "?", "via": "?", "ok": False, "detail": "invalid job: not an object"}
    ]


# ---------------------------------------------------------------- the generated audio
def test_the_wav_is_half_a_second_of_16khz_mono_pcm() -> None:
    with wave.open(io.BytesIO(check.make_wav())) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getcomptype()) == (1, 2, 16000, "NONE")
        assert w.getnframes() == 8000
        assert any(w.readframes(100))  # not silence


# ---------------------------------------------------------------- as a standalone script
def run_script(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    # -I -S: no site-packages and no repository on sys.path, as inside the API container.
    return subprocess.run(
        [sys.executable, "-I", "-S", str(CHECK_SCRIPT), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )


def test_the_script_reads_stdin_and_prints_json(servers: dict[str, str]) -> None:
    done = run_script(stdin=json.dumps(good_jobs(servers)))
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [r["ok"] for r in results] == [True] * 4
    assert results[1]["dimension"] == 1024


def test_the_script_exits_1_when_a_check_fails_and_takes_a_file(servers: dict[str, str], tmp_path: Path) -> None:
    jobs = {
        "jobs": [
            job(TG, servers["vllm"], "guillaumetell-7b", "vk"),
            job(TG, servers["vllm"], "guillaumetell-7b", "bad"),
        ],
        "timeout": 5,
    }
    (tmp_path / "job.json").write_text(json.dumps(jobs))
    done = run_script("--timeout", "3", str(tmp_path / "job.json"))
    assert done.returncode == 1, done.stderr
    assert [r["ok"] for r in json.loads(done.stdout)] == [True, False]


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        ((), "not json"),
        ((), '{"jobs": 3}'),
        ((), '{"jobs": [], "timeout": "x"}'),
        (("--timeout",), "[]"),
        (("/nonexistent.json",), ""),
    ],
)
def test_the_script_exits_2_on_unreadable_input(args: tuple[str, ...], stdin: str) -> None:
    done = run_script(*args, stdin=stdin)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("check.py:")
