"""`pull`, `lock`, `bundle`/`load` and `offline: true` against the real daemon (the GPU start order:
test_coldstart_docker.py).

Pulls come from a real registry on loopback (``loopback_registry``); the Hugging Face download runs
the real command in a stand-in downloader image whose ``huggingface_hub`` writes the hub layout
and reports only whether a token was set (no hub is reachable here). Everything a test creates
carries its project's label and is removed by the ``deploy`` fixture, pass or fail.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import shutil
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from albert_deploy.cli import cli
from albert_deploy.converge.containers import PROJECT
from albert_deploy.plan.assets import URL_OVERRIDE_ENV
from albert_deploy.plan.releases import r0_2_0
from tests.conftest import TEST_LABEL
from tests.fakedocker import TIKTOKEN_BODY, tiktoken_test_asset
from tests.helpers import Deployment

pytestmark = pytest.mark.docker

TOKEN = "hf_standin_" + uuid.uuid4().hex  # what must never show up anywhere
E5 = "intfloat/multilingual-e5-large"

FAKE_HUB = '''
import os, time
REVISION = "0123456789abcdef0123456789abcdef01234567"

def snapshot_download(repo_id, cache_dir, **kwargs):
    """The hub cache layout: models--org--name/{refs/main, snapshots/REV/...}."""
    time.sleep(0.5)  # long enough for the test to inspect the running container
    base = os.path.join(cache_dir, "models--" + repo_id.replace("/", "--"))
    snapshot = os.path.join(base, "snapshots", REVISION)
    os.makedirs(snapshot, exist_ok=True)
    os.makedirs(os.path.join(base, "refs"), exist_ok=True)
    with open(os.path.join(base, "refs", "main"), "w") as f:
        f.write(REVISION)
    with open(os.path.join(snapshot, "config.json"), "w") as f:
        f.write("{}")
    return snapshot
'''


class _Tiktoken(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(TIKTOKEN_BODY)))
        self.end_headers()
        self.wfile.write(TIKTOKEN_BODY)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(autouse=True)
def tiktoken_on_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """0.2.0's tiktoken file, served on 127.0.0.1 through the test-only URL override (no other host is reachable)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tiktoken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(URL_OVERRIDE_ENV, f"http://127.0.0.1:{server.server_port}/o200k_base.tiktoken")
    monkeypatch.setattr(r0_2_0, "ASSETS", (tiktoken_test_asset(),))
    try:
        yield tiktoken_test_asset().cache_file
    finally:
        server.shutdown()


def _run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def downloader(docker_client: Any, standin_images: dict[str, str]) -> Iterator[str]:
    """vLLM's stand-in (python3 on PATH) plus a stand-in ``huggingface_hub``."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        files = {
            "Dockerfile": f"FROM {standin_images['vllm']}\nCOPY huggingface_hub /opt/fakehub/huggingface_hub\n"
            "ENV PYTHONPATH=/opt/fakehub\n",
            "huggingface_hub/__init__.py": FAKE_HUB,
        }
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    tag = f"albert-deploy-test/downloader:{uuid.uuid4().hex[:8]}"
    context.seek(0)
    docker_client.images.build(fileobj=context, custom_context=True, tag=tag, labels={TEST_LABEL: "1"}, rm=True)
    try:
        yield tag
    finally:
        docker_client.images.remove(tag, force=True)


def _push(client: Any, source: str, registry: str, name: str) -> str:
    """Push ``source`` as ``registry/standins/name:TAG`` and drop the local tag: only a pull brings it back."""
    image = f"{registry}/standins/{name}:{uuid.uuid4().hex[:8]}"
    repository, tag = image.rsplit(":", 1)
    client.images.get(source).tag(repository, tag)
    for line in client.images.push(repository, tag=tag, stream=True, decode=True):
        assert "error" not in line, line
    client.images.remove(image)
    return image


def _files(client: Any, image: str, volume: str, path: str) -> list[str]:
    """Every path under ``path`` in ``volume`` with its owner uid, read in a throwaway container."""
    out = client.containers.run(
        image, entrypoint=["sh", "-c", f"cd {path} && find . -exec stat -c '%u %n' {{}} +"], remove=True,
        volumes={volume: {"bind": path, "mode": "ro"}}, network_mode="none", labels={TEST_LABEL: "1"},
    )  # fmt: skip
    return sorted(out.decode().split("\n")[:-1])


def test_pull_lock_and_offline_up_against_a_loopback_registry(
    tiktoken_on_loopback: str,
    deploy: Callable[..., Deployment],
    loopback_registry: str,
    standin_images: dict[str, str],
    downloader: str,
    docker_client: Any,
) -> None:
    names = {"api": "albert-api", "redis": "redis", "postgres": "postgres", "qdrant": "qdrant", "tei": "tei"}
    pushed = {key: _push(docker_client, standin_images[name], loopback_registry, name) for key, name in names.items()}
    pushed["downloader"] = _push(docker_client, downloader, loopback_registry, "downloader")
    d = deploy(offline=True)
    d.data["images"] = {k: pushed[k] for k in ("api", "redis", "postgres", "qdrant", "downloader")}
    d.model("multilingual-e5-large")["image"] = pushed["tei"]
    d.edit()
    try:
        # offline: nothing here yet, so `up` refuses at once, naming what is missing and the fix.
        refused = d.cli("up")
        assert refused.exit_code == 1
        assert "offline: true, and this host is missing" in refused.stderr
        assert f"image {pushed['redis']}," in refused.stderr and "albert-deploy pull" in refused.stderr
        assert d.ids() == {}

        # pull: every image from the registry with progress, then the download with the token.
        seen: list[dict[str, Any]] = []
        watcher = threading.Thread(target=_watch_downloads, args=(docker_client, d.project, seen), daemon=True)
        watcher.start()
        time.sleep(0.2)
        pulled = _run("pull", str(d.profile), "-o", str(d.out), "--json", env={"HF_TOKEN": TOKEN})
        assert pulled.exit_code == 0, pulled.output
        result = json.loads(pulled.stdout)
        assert sorted(i["image"] for i in result["images"]) == sorted(pushed.values())
        assert f"{pushed['redis']}: pulling" in pulled.stderr  # progress per image (JSON lines on stderr)
        (asset,) = result["assets"]
        assert asset["volume"] == f"{d.project}_tiktoken-cache"
        # Fetched from 127.0.0.1 through the override, checked, owned by the API's user (tiktoken may rewrite it).
        assert _files(docker_client, pushed["api"], asset["volume"], "/t") == [
            "1100 .",
            f"1100 ./{tiktoken_on_loopback}",
        ]
        (model,) = result["models"]
        assert model["model"] == E5 and model["volume"] == f"{d.project}_multilingual-e5-large-cache"
        assert model["detail"].endswith("token set") and result["token"] == "set"
        assert TOKEN not in pulled.output
        watcher.join(timeout=10)
        (inspected,) = seen
        assert inspected["Config"]["Cmd"] == [E5, "/data", "/data", ""]
        assert TOKEN not in json.dumps(inspected["Config"]["Cmd"]) + json.dumps(inspected["Config"]["Entrypoint"])
        assert f"HF_TOKEN={TOKEN}" in inspected["Config"]["Env"]  # through the environment only
        assert [m["Destination"] for m in inspected["Mounts"]] == ["/data"]  # TEI 1.8 reads /data as its hub cache
        layout = _files(docker_client, pushed["tei"], model["volume"], "/data")
        snapshot = "./models--intfloat--multilingual-e5-large/snapshots/0123456789abcdef0123456789abcdef01234567"
        assert (
            f"0 {snapshot}/config.json" in layout and "0 ./models--intfloat--multilingual-e5-large/refs/main" in layout
        )

        # lock: the registry's digests; render and up then run image@sha256.
        locked = d.cli("lock", "--json")
        assert locked.exit_code == 0, locked.output
        lock_file = d.profile.with_name("profile.lock.json")
        assert json.loads(locked.stdout)["lock"] == str(lock_file)
        entries = {e["image"]: e for e in json.loads(locked.stdout)["images"]}
        for image in pushed.values():
            if image != pushed["downloader"]:
                digests = docker_client.images.get(image).attrs["RepoDigests"]
                assert entries[image]["pinned"] in digests and entries[image]["pinned"].endswith(
                    entries[image]["digest"]
                )
        assert d.cli("render", "-o", str(d.out)).exit_code == 0
        compose = (d.out / "compose.yml").read_text()
        assert f'"{entries[pushed["redis"]]["pinned"]}"' in compose and pushed["redis"] not in compose
        for name in ("compose.yml", "config.yml", ".env", "RUNBOOK.md"):
            assert TOKEN not in (d.out / name).read_text()

        d.up()  # offline, with everything present now
        assert d.container("redis").attrs["Config"]["Image"] == entries[pushed["redis"]]["pinned"]
        status = json.loads(d.cli("status", "--json").stdout)
        assert {r["lock"] for r in status["services"]} == {"matches"} and not status["lock_mismatch"]

        # `up` pulls a pinned image that is missing here by its digest. The stand-in's content stays
        # here under its own tag, so the entry must carry no id (as when locked before a pull), or
        # the locked-id match would rightly run that content instead of pulling.
        data = json.loads(lock_file.read_text())
        data["images"][pushed["redis"]]["id"] = None
        lock_file.write_text(json.dumps(data))
        d.edit(offline=False)
        assert d.cli("down").exit_code == 0
        _untag(docker_client, pushed["redis"].rsplit(":", 1)[0] + "@")
        _untag(docker_client, pushed["redis"])
        pulled_by_up = d.cli("up")
        assert pulled_by_up.exit_code == 0, pulled_by_up.output
        assert f"pulling {entries[pushed['redis']]['pinned']}" in pulled_by_up.stdout
        assert d.container("redis").attrs["Config"]["Image"] == entries[pushed["redis"]]["pinned"]
        d.edit(offline=True)

        # A container on another image than the lock's is reported.
        data = json.loads(lock_file.read_text())
        data["images"][pushed["redis"]].update(digest="sha256:" + "0" * 64, id=None,
                                               pinned=pushed["redis"].rsplit(":", 1)[0] + "@sha256:" + "0" * 64)  # fmt: skip
        lock_file.write_text(json.dumps(data))
        status = json.loads(d.cli("status", "--json").stdout)
        rows = {r["service"]: r["lock"] for r in status["services"]}
        assert rows["redis"].startswith("differs") and rows["api"] == "matches" and status["lock_mismatch"]
        lock_file.unlink()

        # offline again, the model cache and tiktoken's file gone: refused, naming both and their volumes.
        assert d.cli("down", "--volumes").exit_code == 0
        refused = d.cli("up")
        assert refused.exit_code == 1
        assert f"model {E5} (volume {model['volume']}), the tiktoken o200k_base encoding" in refused.stderr
        assert f"volume {asset['volume']})." in refused.stderr  # (and the redis tag: pulled by digest)
    finally:
        _untag(docker_client, loopback_registry + "/")


def _untag(client: Any, prefix: str) -> None:
    """Remove every tag and digest reference starting with ``prefix``, by name: the stand-ins they copy stay."""
    import docker.errors

    for image in client.images.list():
        for ref in (image.attrs.get("RepoTags") or []) + (image.attrs.get("RepoDigests") or []):
            if ref.startswith(prefix):
                with contextlib.suppress(docker.errors.NotFound):
                    client.images.remove(ref)


def _watch_downloads(client: Any, project: str, seen: list[dict[str, Any]]) -> None:
    """Inspect the download container while it runs (it is removed when done)."""
    events = client.events(decode=True, filters={"type": "container", "event": "start", "label": f"{PROJECT}={project}"},
                           until=int(time.time()) + 60)  # fmt: skip
    for event in events:
        if "io.albert-deploy.download" in (event.get("Actor") or {}).get("Attributes", {}):
            seen.append(client.api.inspect_container(event["id"]))
            events.close()
            return


# --- bundle and load ----------------------------------------------------------------------------


def test_bundle_then_load_restores_images_volumes_and_files(
    tiktoken_on_loopback: str,
    deploy: Callable[..., Deployment],
    standin_images: dict[str, str],
    docker_client: Any,
    tmp_path: Path,
) -> None:
    # Dedicated tags of the stand-ins: removing them leaves every other test's images alone.
    copies = {key: f"albert-deploy-test-bundle/{name}:{uuid.uuid4().hex[:8]}" for key, name in
              {"api": "albert-api", "redis": "redis", "postgres": "postgres", "qdrant": "qdrant", "tei": "tei"}.items()}  # fmt: skip
    for key, copy in copies.items():
        docker_client.images.get(standin_images["albert-api" if key == "api" else key]).tag(copy)
    d = _offline_stack(deploy, copies)
    volume = f"{d.project}_multilingual-e5-large-cache"
    try:
        # A model cache as `pull` leaves it (owned by the server's user: ownership must survive).
        _seed_e5_cache(
            docker_client, d, volume, copies["tei"],
            f"mkdir -p {E5_SNAPSHOT} && echo weights > {E5_SNAPSHOT}/model.safetensors && chown -R 1100 {E5_CACHE}",
        )  # fmt: skip
        tiktoken = _seed_tiktoken(docker_client, d, copies["api"], tiktoken_on_loopback)
        archive = tmp_path / "albert.tar"
        t0 = time.monotonic()
        made = _run("bundle", str(d.profile), "-o", str(archive), "--json")
        assert made.exit_code == 0, made.output
        bundled = json.loads(made.stdout)
        print(f"bundle: {bundled['size'] / 1e6:.1f} MB in {time.monotonic() - t0:.1f} s")
        assert sorted(bundled["members"]) == sorted(
            ["images.tar", f"volumes/{volume}.tar", f"volumes/{tiktoken}.tar", "rendered/compose.yml",
             "rendered/config.yml", "rendered/RUNBOOK.md", "profile/profile.yaml"]
        )  # fmt: skip
        with tarfile.open(archive) as tar:
            assert tar.getnames()[0] == "manifest.json"
            offsets = {m.name: (m.offset_data, m.size) for m in tar}

        # The offline host: no images, no volume, no files.
        for copy in copies.values():
            docker_client.images.remove(copy)
        docker_client.volumes.get(volume).remove()
        docker_client.volumes.get(tiktoken).remove()
        host = tmp_path / "offline"
        out, profiles = host / "deploy", host / "profiles"

        # One flipped byte in the model cache: refused, naming the member; nothing loaded.
        broken = tmp_path / "broken.tar"
        shutil.copy(archive, broken)
        start, size = offsets[f"volumes/{volume}.tar"]
        with open(broken, "r+b") as f:
            f.seek(start + size // 2)
            byte = f.read(1)
            f.seek(start + size // 2)
            f.write(bytes([byte[0] ^ 0xFF]))
        refused = _run("load", str(broken), "-o", str(out), "--profile-dir", str(profiles))
        assert refused.exit_code == 1
        assert f"member volumes/{volume}.tar is corrupted" in refused.stderr and "Nothing was loaded" in refused.stderr
        assert not any(docker_client.images.list(name=c.rsplit(":", 1)[0]) for c in copies.values())
        assert not docker_client.volumes.list(filters={"name": volume}) and not host.exists()

        t0 = time.monotonic()
        loaded = _run("load", str(archive), "-o", str(out), "--profile-dir", str(profiles), "--json")
        assert loaded.exit_code == 0, loaded.output
        print(f"load: {time.monotonic() - t0:.1f} s")
        for key, copy in copies.items():
            assert docker_client.images.get(copy).id == docker_client.images.get(standin_images[
                "albert-api" if key == "api" else key]).id  # fmt: skip
        assert sorted(p.name for p in out.iterdir()) == ["RUNBOOK.md", "compose.yml", "config.yml"]
        assert (profiles / "profile.yaml").read_text() == d.profile.read_text()
        assert "1100 ./models--intfloat--multilingual-e5-large/snapshots/r1/model.safetensors" in _files(
            docker_client, copies["tei"], volume, "/data")  # fmt: skip

        # And it runs there, offline: every image and the model cache are present.
        up = _run("up", str(profiles / "profile.yaml"), "-o", str(out), "--json")
        assert up.exit_code == 0, up.output
    finally:
        for copy in copies.values():
            with contextlib.suppress(Exception):
                docker_client.images.remove(copy)


def test_a_locked_profile_survives_bundle_and_load(
    tiktoken_on_loopback: str,
    deploy: Callable[..., Deployment],
    loopback_registry: str,
    standin_images: dict[str, str],
    docker_client: Any,
    tmp_path: Path,
) -> None:
    import docker.errors

    timings: dict[str, float] = {}
    run = uuid.uuid4().hex[:8]
    # Images with ids of their own (a label on each stand-in): removing them really removes their
    # content, so only `load` can bring it back; the stand-ins other tests use stay untouched.
    pushed: dict[str, str] = {}
    for key, name in {"api": "albert-api", "redis": "redis", "postgres": "postgres", "qdrant": "qdrant",
                      "tei": "tei"}.items():  # fmt: skip
        dockerfile = f"FROM {standin_images[name]}\nLABEL albert-deploy.test.run={run}\n"
        pushed[key] = f"{loopback_registry}/locked/{name}:{run}"
        docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=pushed[key], rm=True)
        for line in docker_client.images.push(pushed[key], stream=True, decode=True):
            assert "error" not in line, line
    own_ids = {key: docker_client.images.get(image).id for key, image in pushed.items()}
    d = _offline_stack(deploy, pushed)
    volume = f"{d.project}_multilingual-e5-large-cache"
    try:
        _seed_e5_cache(docker_client, d, volume, pushed["tei"], f"mkdir -p {E5_SNAPSHOT}")
        _seed_tiktoken(docker_client, d, pushed["api"], tiktoken_on_loopback)
        locked = d.cli("lock", "--json")
        assert locked.exit_code == 0, locked.output
        entries = {e["image"]: e for e in json.loads(locked.stdout)["images"]}
        pinned = {key: entries[image]["pinned"] for key, image in pushed.items()}
        assert all(entries[image]["id"] == own_ids[key] for key, image in pushed.items())

        # The connected host: up by digest, for the config hashes to compare with.
        t0 = time.monotonic()
        d.up()
        timings["up (connected)"] = time.monotonic() - t0
        before = {s: d.container(s).labels for s in d.ids()}
        assert d.container("redis").attrs["Config"]["Image"] == pinned["redis"]

        t0 = time.monotonic()
        archive = tmp_path / "locked.tar"
        made = _run("bundle", str(d.profile), "-o", str(archive), "--json")
        assert made.exit_code == 0, made.output
        assert "profile/profile.lock.json" in json.loads(made.stdout)["members"]
        timings["bundle"] = time.monotonic() - t0

        # The offline host: none of these images (by tag, digest or id), no volume.
        assert d.cli("down", "--volumes").exit_code == 0
        _untag(docker_client, loopback_registry + "/")
        for image_id in own_ids.values():
            with pytest.raises(docker.errors.ImageNotFound):
                docker_client.images.get(image_id)
        host = tmp_path / "offline"
        out, profiles = host / "deploy", host / "profiles"
        t0 = time.monotonic()
        loaded = _run("load", str(archive), "-o", str(out), "--profile-dir", str(profiles), "--json")
        assert loaded.exit_code == 0, loaded.output
        timings["load"] = time.monotonic() - t0
        assert (profiles / "profile.lock.json").is_file()
        for key in pushed:  # the bug's premise: `docker load` brings the content back, not the digest
            assert docker_client.images.get(own_ids[key]).id == own_ids[key]
            with pytest.raises(docker.errors.ImageNotFound):
                docker_client.images.get(pinned[key])
            # ...and, saved by digest, possibly untagged (prunable): `load` tags it again, as bundled.
            assert pushed[key] in docker_client.images.get(own_ids[key]).tags
        assert json.loads(loaded.stdout)["tags"] == sorted(pushed.values())
        assert json.loads(loaded.stdout)["tags_not_restored"] == []
        shutil.copy(d.out / ".env", out / ".env")  # the same secrets: config hashes comparable

        # offline: true accepts the id match, and every container runs the locked content.
        t0 = time.monotonic()
        up = _run("up", str(profiles / "profile.yaml"), "-o", str(out), "--json")
        assert up.exit_code == 0, up.output
        timings["up (offline, after load)"] = time.monotonic() - t0
        service_image = {"api": "api", "redis": "redis", "postgres": "postgres", "qdrant": "qdrant",
                         "multilingual-e5-large": "tei"}  # fmt: skip
        assert set(d.ids()) == set(service_image)
        for service, key in service_image.items():
            container = d.container(service)
            assert container.attrs["Image"] == own_ids[key] == container.labels["com.docker.compose.image"]
            if service != "api":  # the API's bind-mounted config has another path on this host
                assert container.labels["com.docker.compose.config-hash"] == before[service][
                    "com.docker.compose.config-hash"]  # fmt: skip
        status = _run("status", str(profiles / "profile.yaml"), "-o", str(out), "--json")
        rows = json.loads(status.stdout)
        assert {r["lock"] for r in rows["services"]} == {"matches"} and not rows["lock_mismatch"]
        assert {r["drift"] for r in rows["services"]} == {"none"}
        again = _run("up", str(profiles / "profile.yaml"), "-o", str(out), "--json")
        assert again.exit_code == 0 and json.loads(again.stdout)["changes"] == 0, again.output
        print("locked bundle: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    finally:
        from tests.helpers import remove_project

        remove_project(docker_client, d.project)  # containers first: they hold the images
        _untag(docker_client, loopback_registry + "/")
        for image_id in own_ids.values():
            with contextlib.suppress(docker.errors.APIError):
                docker_client.images.remove(image_id, force=True)


E5_CACHE = "/data/models--intfloat--multilingual-e5-large"
E5_SNAPSHOT = f"{E5_CACHE}/snapshots/r1"


def _offline_stack(deploy: Any, images: dict[str, str]) -> Any:
    """The small stand-in stack with `offline: true`, on the given copies of the images."""
    d = deploy(offline=True)
    d.data["images"] = {k: images[k] for k in ("api", "redis", "postgres", "qdrant")}
    d.model("multilingual-e5-large")["image"] = images["tei"]
    d.edit()
    return d


def _seed_tiktoken(docker_client: Any, d: Any, image: str, cache_file: str) -> str:
    """The tiktoken volume as `pull` leaves it: the test file under tiktoken's name, owned by the API's user."""
    volume = f"{d.project}_tiktoken-cache"
    docker_client.volumes.create(volume, labels={PROJECT: d.project})
    docker_client.containers.run(
        image, remove=True, network_mode="none", labels={PROJECT: d.project}, user="0",
        volumes={volume: {"bind": "/t", "mode": "rw"}},
        entrypoint=["sh", "-c", f"printf 'bzw= 0\\nISA= 1\\n' > /t/{cache_file} && chown -R 1100 /t"],
    )  # fmt: skip
    return volume


def _seed_e5_cache(docker_client: Any, d: Any, volume: str, image: str, script: str) -> None:
    """A model-cache volume of the project, filled by `script` in TEI's cache layout (/data)."""
    docker_client.volumes.create(volume, labels={PROJECT: d.project})
    docker_client.containers.run(
        image, remove=True, network_mode="none", labels={PROJECT: d.project},
        volumes={volume: {"bind": "/data", "mode": "rw"}}, entrypoint=["sh", "-c", script],
    )  # fmt: skip
