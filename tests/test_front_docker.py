"""api.public and playground against the real Docker daemon: the REAL Caddy (Debian's 2.6.2, the
pinned 2.11 image cannot be pulled here) in front of the stand-ins, reached over TLS with curl and
with headless Chromium. The certificate is made here, by openssl, for a test CA."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import FULL, Deployment, free_port

pytestmark = pytest.mark.docker
DOMAIN = "albert.example.org"


def _certificate(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for DOMAIN signed by it."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=albert-deploy test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "req.csr", "-subj", f"/CN={DOMAIN}")
    (tmp / "ext.cnf").write_text(f"subjectAltName=DNS:{DOMAIN}\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "req.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "cert.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"


def _curl(ca: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "30", "--cacert", str(ca), "--resolve", f"{DOMAIN}:{port}:127.0.0.1", *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_front_door_serves_api_and_playground_over_tls(deploy: Callable[..., Deployment], tmp_path: Path) -> None:
    ca, cert, key = _certificate(tmp_path)
    https, http = free_port(), free_port()
    d = deploy(FULL)
    d.data["models"] = [m for m in d.data["models"] if m["model"].split("/")[0] in ("AgentPublic", "intfloat")]
    d.data["api"] = {"release": "0.2.0", "vector_store": "qdrant", "public": {
        "domain": DOMAIN, "cert_file": str(cert), "key_file": str(key), "bind": "127.0.0.1",
        "https_port": https, "http_port": http, "max_request_size": "2MB"}}  # fmt: skip
    d.data["images"].update(front="albert-deploy-test/caddy:1", playground="albert-deploy-test/playground:1")
    d.edit(playground=True)

    result = d.up("--no-gpus")
    assert {s["service"]: s["health"] for s in result["services"]} == {
        s["service"]: "healthy" for s in result["services"]
    }
    assert result["api_url"] == f"https://{DOMAIN}:{https}"
    # Only the front door publishes ports; the API binds to the compose network alone.
    published = {name: d.container(name).attrs["HostConfig"]["PortBindings"] or {} for name in d.ids()}
    assert {n for n, p in published.items() if p} == {"front"}
    assert sorted(published["front"]) == ["443/tcp", "80/tcp"]

    base = f"https://{DOMAIN}:{https}"
    master = next(
        line.split("=", 1)[1] for line in (d.out / ".env").read_text().splitlines() if line.startswith("MASTER_KEY=")
    )
    auth = ["-H", f"Authorization: Bearer {master}"]
    models = _curl(ca, https, "-f", *auth, f"{base}/v1/models")
    assert models.returncode == 0, models.stderr
    assert {m["id"] for m in json.loads(models.stdout)["data"]} == {"guillaumetell-7b", "multilingual-e5-large"}

    # A streamed completion arrives in several chunks, as the server sends them (0.2 s apart).
    body = json.dumps({"model": "guillaumetell-7b", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    stream = subprocess.Popen(
        ["curl", "-sS", "-N", "--cacert", str(ca), "--resolve", f"{DOMAIN}:{https}:127.0.0.1", *auth,
         "-H", "Content-Type: application/json", "-d", body, f"{base}/v1/chat/completions"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    arrivals = [(time.monotonic(), line) for line in stream.stdout or [] if line.startswith("data: ")]
    assert stream.wait(timeout=30) == 0
    assert arrivals[-1][1].strip() == "data: [DONE]" and len(arrivals) >= 5
    chunks = [json.loads(line[6:]) for _, line in arrivals[:-1]]
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        == "Stand-in answer from AgentPublic/guillaumetell-7b."  # the served id
    )
    assert arrivals[-1][0] - arrivals[0][0] > 0.6  # not buffered into one piece

    # Larger than max_request_size: 413 from the proxy (2.6 would say 502 without its error route).
    upload = tmp_path / "audio.wav"
    upload.write_bytes(b"\0" * 3_000_000)
    too_large = _curl(ca, https, "-o", "/dev/null", "-w", "%{http_code}", *auth, "-F", f"file=@{upload}",
                      "-F", "model=whisper", f"{base}/v1/audio/transcriptions")  # fmt: skip
    assert too_large.stdout == "413", too_large.stderr
    redirect = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                               f"http://127.0.0.1:{http}/v1/models"], capture_output=True, text=True)  # fmt: skip
    assert redirect.stdout == f"308 https://127.0.0.1:{https}/v1/models"

    # The playground made its own database in the (real) postgres before it served its page.
    databases = d.container("postgres").exec_run(["psql", "-U", "postgres", "-Atc", "SELECT datname FROM pg_database"])
    assert "playground" in databases.output.decode().split()
    page = _curl(ca, https, "-f", f"{base}/playground/")
    assert page.returncode == 0 and "<title>Albert playground</title>" in page.stdout, page.stderr

    # A real browser opens the playground through the TLS front door.
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: bash scripts/setup-test-env.sh"
    shot = tmp_path / "playground.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--host-resolver-rules=MAP {DOMAIN} 127.0.0.1", "--ignore-certificate-errors",
         f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1280,800", f"--screenshot={shot}",
         f"{base}/playground/"],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    pixels = zlib.decompress(b"".join(_chunks(data, b"IDAT")))
    assert len(set(pixels)) > 16  # drawn, not one flat colour


def _chunks(png: bytes, kind: bytes) -> list[bytes]:
    found, at = [], 8
    while at < len(png):
        size = int.from_bytes(png[at : at + 4], "big")
        if png[at + 4 : at + 8] == kind:
            found.append(png[at + 8 : at + 8 + size])
        at += 12 + size
    return found
