"""Hardened containers on the stand-in images: whisper's model cache is writable by its uid 1100 on
the very first start, through `up` and through plain `docker compose up`, and the hardening the
file asks for is what the containers run with."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.helpers import FULL, Deployment, compose_binary

pytestmark = pytest.mark.docker

WHISPER = "whisper-large-v3-turbo"
CACHE = "/home/whisper/.cache/huggingface"


def _whisper_and_embeddings(deploy: Callable[..., Deployment]) -> Deployment:
    d = deploy(FULL)  # 0.2.0 needs an embeddings model; whisper stays on GPU 0 (run without GPUs)
    d.edit(models=[m for m in d.data["models"] if "whisper" in m["model"] or "e5" in m["model"]])
    return d


def _assert_cache_is_1100s(container: Any) -> None:
    status = container.exec_run(["cat", "/proc/1/status"]).output.decode()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Uid"].split() == ["1100"] * 4 and fields["Gid"].split() == ["1100"] * 4  # the server itself
    assert int(fields["CapEff"], 16) == 0  # it kept no capability after the drop
    owner = container.exec_run(["stat", "-c", "%u", CACHE]).output.decode().strip()
    assert owner == "1100"
    written = container.exec_run(["sh", "-c", f"mkdir -p {CACHE}/hub && touch {CACHE}/hub/ok"], user="1100")
    assert written.exit_code == 0, written.output


def test_whisper_cache_is_writable_by_1100_on_the_first_up(deploy: Callable[..., Deployment]) -> None:
    d = _whisper_and_embeddings(deploy)
    d.up("--no-gpus")
    whisper = d.container(WHISPER)
    _assert_cache_is_1100s(whisper)
    host = whisper.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and sorted(host["CapAdd"]) == ["CHOWN", "SETGID", "SETUID"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"] and host["Memory"] == 6 * 2**30
    assert whisper.attrs["Config"]["User"] == "0"
    # Restarted, it finds its files (already 1100's) and starts again.
    whisper.restart()
    _assert_cache_is_1100s(d.container(WHISPER))


def test_whisper_cache_is_writable_by_1100_under_plain_docker_compose_up(deploy: Callable[..., Deployment]) -> None:
    d = _whisper_and_embeddings(deploy)
    assert d.cli("render", "-o", str(d.out)).exit_code == 0
    compose = d.out / "compose.yml"
    data = yaml.safe_load(compose.read_text())
    del data["services"][WHISPER]["deploy"]  # no GPU on this machine: only the reservation goes
    compose.write_text(yaml.safe_dump(data))
    subprocess.run([compose_binary(), "-f", str(compose), "up", "-d", "--wait", WHISPER],
                   capture_output=True, check=True, timeout=120)  # fmt: skip
    _assert_cache_is_1100s(d.container(WHISPER))


def test_every_stand_in_runs_hardened(deploy: Callable[..., Deployment]) -> None:
    d = deploy(FULL)
    result = d.up("--no-gpus")
    assert {s["health"] for s in result["services"]} == {"healthy"}
    for service in d.ids():
        host = d.container(service).attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges:true"], service
        assert host["Memory"] >= 2**30, service
