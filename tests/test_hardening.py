"""The rendered compose file for the real images: pinned images, hardened services (compose-lint
finds nothing high, and only the documented exceptions at medium), whisper owning its cache."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from albert_deploy import catalog
from albert_deploy.commands import load
from albert_deploy.plan import servers
from albert_deploy.plan.releases import MODULES
from albert_deploy.render.files import render_plan
from albert_deploy.sizes import Size
from tests.helpers import PROFILES, fixed_env

GIB = 2**30
# compose-lint rules left on purpose, with the reason (the README's "Hardening" says the same).
MEDIUM_EXCEPTIONS = {
    # No registry is reachable where the plan is made: `albert-deploy lock` resolves and pins every
    # image's digest (image@sha256:…), on a connected host.
    "CL-0019": "image tag without digest",
    # Memory is limited; CPU is not: Docker refuses `cpus` above the host's core count, which the
    # plan does not know, and throttling a model server costs latency.
    "CL-0026": "no CPU limit",
    # whisper starts as root with only CHOWN, SETUID and SETGID to own its model cache, then drops
    # to uid 1100 before the server runs.
    "CL-0018": "whisper starts as root to own its cache",
}
LOW_EXCEPTIONS = {
    # Writable root file systems: the servers write caches (torch.compile, tiktoken, /tmp) outside
    # their volumes; read_only would need a tmpfs per path, untested against the real images.
    "CL-0007": "root filesystem not read-only",
}


def _compose_lint() -> list[str]:
    found = shutil.which("compose-lint") or shutil.which("compose-lint", path=str(Path(sys.executable).parent))
    assert found, "compose-lint is not installed: pip install -e '.[test]'"
    return [found]


def _rendered(profile: Path, tmp_path: Path) -> tuple[Any, Path]:
    plan = load(str(profile))
    rendered = render_plan(plan, fixed_env(plan.secrets))
    out = tmp_path / profile.stem
    out.mkdir()
    for name, text in rendered.files.items():
        (out / name).write_text(text)
    return plan, out / "compose.yml"


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_compose_lint_finds_only_the_documented_exceptions(profile: Path, tmp_path: Path) -> None:
    plan, compose = _rendered(profile, tmp_path)
    result = subprocess.run(
        [*_compose_lint(), "check", "--format", "json", "--fail-on", "critical", str(compose)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)["findings"]
    assert findings, "compose-lint found nothing at all: is it reading the file?"
    by_severity: dict[str, set[str]] = {}
    for f in findings:
        by_severity.setdefault(f["severity"], set()).add(f["rule_id"])
    assert not by_severity.get("high") and not by_severity.get("critical"), findings
    assert by_severity.get("medium", set()) <= set(MEDIUM_EXCEPTIONS), findings
    assert by_severity.get("low", set()) <= set(LOW_EXCEPTIONS), findings
    whisper = {s.name for s in plan.services if s.server == "whisper"}
    for f in findings:
        if f["rule_id"] == "CL-0026":  # memory is always limited: only the CPU half may fire
            assert "no CPU limit" in f["message"] and "memory" not in f["message"].split(".")[0], f
        if f["rule_id"] == "CL-0018":
            assert f["service"] in whisper, f


def test_the_exceptions_are_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for rule in (*MEDIUM_EXCEPTIONS, *LOW_EXCEPTIONS):
        assert rule in readme, rule


# A full version, possibly prefixed or suffixed (v0.11.0, hopper-1.8.3, 7.2.0-v11), or a commit.
# PostgreSQL 10 and later number releases major.minor: 16.5 is a full version, 16 moves.
_PINNED = r"^(?:[a-z0-9]+-)?v?\d+(?:\.\d+){%d}(?:[-.][\w.]+)?$|^[0-9a-f]{40}$"


def _pinned(image: str) -> bool:
    repository, _, tag = image.rpartition(":")
    return bool(re.match(_PINNED % (1 if repository == "postgres" else 2), tag))


def test_every_image_is_pinned_to_a_full_version() -> None:
    images = {catalog.DOWNLOADER_IMAGE, *(r.image for r in catalog.RELEASES.values())}
    images |= {image for module in MODULES.values() for image in module.IMAGES.values()}
    images |= {s.image for profile in PROFILES for s in load(str(profile)).services}
    tei = "ghcr.io/huggingface/text-embeddings-inference:"
    images |= {tei + catalog.tei_tag(cc, on_gpu) for cc in catalog.TEI_VARIANTS for on_gpu in (True, False)}
    moving = sorted(i for i in images if not _pinned(i))
    assert not moving, f"moving tags: {moving}"
    assert _pinned("postgres:16.5") and not _pinned("postgres:16") and not _pinned(tei + "hopper-1.8")
    assert _pinned("redis/redis-stack-server:7.2.0-v11") and not _pinned("vllm/vllm-openai:latest")


def test_every_service_drops_all_capabilities_and_adds_back_only_its_needs() -> None:
    needs = {"postgres": {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"}}
    needs_by_server = {"tei": {"NET_BIND_SERVICE"}, "whisper": {"CHOWN", "SETUID", "SETGID"}}
    for profile in PROFILES:
        for s in load(str(profile)).services:
            assert s.cap_drop == ("ALL",) and s.security_opt == ("no-new-privileges:true",), s.name
            assert set(s.cap_add) == needs_by_server.get(s.server or "", needs.get(s.name, set())), s.name
            assert s.mem_limit is not None and s.mem_limit >= GIB, s.name


def test_a_model_servers_memory_limit_is_its_weights_plus_its_runtime() -> None:
    plan = load(str(next(p for p in PROFILES if p.stem == "default")))
    by_name = {s.name: s for s in plan.services}
    # guillaumetell-7b: 7.24e9 bf16 parameters = 13.5 GiB, + vLLM's 8 GiB, rounded up to 22 GiB.
    assert by_name["guillaumetell-7b"].mem_limit == Size(22 * GIB)
    # whisper-large-v3-turbo: 0.809e9 fp16 = 1.5 GiB, + 4 GiB -> 6 GiB.
    assert by_name["whisper-large-v3-turbo"].mem_limit == Size(6 * GIB)
    cpu = load(str(next(p for p in PROFILES if p.stem == "cpu-dev")))
    # TEI on CPU adds the model's activations: 0.56e9 fp16 = 1.04 GiB + 4 + 1.5 -> 7 GiB.
    assert {s.name: s.mem_limit for s in cpu.services}["multilingual-e5-large"] == Size(7 * GIB)


def test_whisper_starts_as_root_only_in_compose_and_drops_to_its_user(tmp_path: Path) -> None:
    plan = load(str(next(p for p in PROFILES if p.stem == "default")))
    whisper = next(s for s in plan.services if s.server == "whisper")
    assert whisper.user is None and whisper.compose_user == "0"  # Kubernetes keeps the image's user
    assert whisper.compose_command is not None and whisper.compose_command[-len(whisper.command) :] == whisper.command
    assert whisper.compose_command[:3] == ("python3", "-c", servers.OWN_CACHE_THEN_DROP)
    assert whisper.compose_command[3:6] == ("1100", "/home/whisper", "/home/whisper/.cache/huggingface")
    # Run the wrapper here: as root it gives the cache (and what is in it) to 1100 and drops to it;
    # otherwise it touches nothing and runs the command as is.
    cache = tmp_path / "cache"
    (cache / "hub").mkdir(parents=True)
    (cache / "hub" / "weights").write_text("x")
    own = [sys.executable, "-c", servers.OWN_CACHE_THEN_DROP, "1100", "/home/whisper", str(cache)]
    out = subprocess.run([*own, "sh", "-c", 'id -u; echo "$HOME"'], capture_output=True, text=True, check=True)
    if os.getuid() == 0:
        assert out.stdout.split() == ["1100", "/home/whisper"]
        assert {p.stat().st_uid for p in (cache, cache / "hub", cache / "hub" / "weights")} == {1100}
    else:
        assert out.stdout.split()[0] == str(os.getuid()) and cache.stat().st_uid == os.getuid()
