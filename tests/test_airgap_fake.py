"""airgap/ (pull, lock, the offline refusal, model caches, bundle and load) against an in-memory
Docker client (tests/fakedocker.py): every branch without a daemon. The docker tier
(test_airgap_docker.py) runs the same paths against the real one."""

from __future__ import annotations

import json
import tarfile
import threading
from pathlib import Path
from typing import Any
from unittest import mock

import docker.errors
import pytest
import yaml
from click.testing import CliRunner

from albert_deploy import commands
from albert_deploy.airgap import bundle, modelcache, offline, unbundle
from albert_deploy.cli import cli
from albert_deploy.converge import engine, images
from albert_deploy.converge.progress import Silent
from albert_deploy.errors import BundleError, DockerError, OfflineError
from albert_deploy.plan.spec import ModelCache
from tests.fakedocker import TIKTOKEN_BODY, FakeClient, connected_fake, tiktoken_test_asset, volume_tar
from tests.helpers import FULL, standins_profile

TOKEN = "hf_secret_token_0123456789"


ENCODING = TIKTOKEN_BODY
ASSET = tiktoken_test_asset()  # the one the fixture makes 0.2.0 plans use


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    return connected_fake(monkeypatch)


def _with_images(client: FakeClient, refs: list[str]) -> None:
    for i, ref in enumerate(sorted(set(refs))):
        client.api.add_image(ref, f"sha256:{i:064d}")


def _job(service: str = "e5", model_id: str = "intfloat/e5") -> ModelCache:
    return ModelCache(service, model_id, "tei:1", f"{service}-cache", "/data", "/data", "1100")


# --- model caches ------------------------------------------------------------------------------


def test_download_runs_in_a_one_off_container_with_the_token_in_its_environment_only(client: FakeClient) -> None:
    client.api.run = lambda c: (0, f"downloaded; token {c['environment'].get('HF_TOKEN')}")
    rows = modelcache.download_all(client, "p", [_job()], "downloader:1", TOKEN, Silent())
    (created,) = client.api.containers.values()
    assert created["image"] == "downloader:1" and created["user"] == "0"
    assert created["command"] == ["intfloat/e5", "/data", "/data", "1100"]  # never the token
    assert created["environment"] == {"HF_TOKEN": TOKEN}
    assert created["host_config"]["mounts"][0]["Source"] == "p_e5-cache"
    assert rows == [{"service": "e5", "model": "intfloat/e5", "volume": "p_e5-cache",
                     "path": "/data/models--intfloat--e5", "ok": True, "detail": "downloaded; token ********"}]  # fmt: skip
    assert client.api.removed == ["c1"] and "p_e5-cache" in client.api.volume_labels


def test_a_failed_download_names_the_model_and_the_fix(client: FakeClient) -> None:
    client.api.run = lambda c: (1, "401 Client Error\nRepository Not Found")
    with pytest.raises(DockerError, match=r"downloading intfloat/e5 into volume p_e5-cache failed: Repository Not"):
        modelcache.download_all(client, "p", [_job()], "downloader:1", None, Silent())
    client.api.start_error = docker.errors.APIError("no such image")
    with pytest.raises(DockerError, match="HF_TOKEN"):
        modelcache.download_all(client, "p", [_job()], "downloader:1", None, Silent())
    assert client.api.containers["c2"]["environment"] == {}  # no token, no variable


def test_missing_caches_are_the_absent_and_the_empty_volumes(client: FakeClient) -> None:
    absent, empty, full = _job("a"), _job("b"), _job("c")
    client.api.volume_data["p_b-cache"] = volume_tar({"readme": b"nothing"})
    client.api.volume_data["p_c-cache"] = volume_tar({"snapshots/1/x": b"weights"})
    assert modelcache.missing_caches(client, "p", [absent, empty, full]) == [absent, empty]
    checks = list(client.api.containers.values())
    assert all(c["host_config"]["network_mode"] == "none" for c in checks)  # the check never reaches out
    assert all(c["host_config"]["mounts"][0]["ReadOnly"] for c in checks)


# --- pull, lock, the offline refusal ----------------------------------------------------------------


def test_pull_takes_everything_from_the_plan(
    client: FakeClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    pulled = mock.create_autospec(
        images.pull_all, side_effect=lambda c, refs, r, parallel: [{"image": i, "id": "x"} for i in refs]
    )
    monkeypatch.setattr(images, "pull_all", pulled)
    profile = standins_profile(
        tmp_path, images={**yaml.safe_load(FULL.read_text())["images"], "downloader": "mirror/dl:1"}
    )
    result = CliRunner().invoke(cli, ["pull", str(profile), "-o", str(tmp_path / "out"), "--parallel-pulls", "2"])
    assert result.exit_code == 0, result.output
    plan = commands.load(str(profile))
    wanted = sorted({s.image for s in plan.services})
    # The downloader's image first (the downloads run in it), then the others while models download.
    assert [c.args[1:] for c in pulled.call_args_list] == [(["mirror/dl:1"], mock.ANY, 2), (wanted, mock.ANY, 2)]
    assert {c["image"] for c in client.api.containers.values()} == {"mirror/dl:1"}
    assert sorted(c["command"][0] for c in client.api.containers.values()) == sorted(
        [*(j.model_id for j in plan.caches), ASSET.url]
    )
    assert "Downloaded 4 model(s) with mirror/dl:1 (Hugging Face token set)" in result.stdout
    assert "Downloaded the tiktoken o200k_base encoding -> volume albert-standins_tiktoken-cache" in result.stdout
    assert TOKEN not in result.stdout


def test_pull_downloads_the_models_while_it_pulls_the_images(client: FakeClient, tmp_path: Path) -> None:
    """Each image pull (but the downloader's, which the downloads need) waits until a model download
    has started: run one after the other, every such wait would time out."""
    profile = standins_profile(
        tmp_path, images={**yaml.safe_load(FULL.read_text())["images"], "downloader": "mirror/dl:1"}
    )
    plan = commands.load(str(profile))
    api = client.api
    api.pullable = {s.image for s in plan.services} | {"mirror/dl:1"}  # nothing is here yet
    downloading, overlapped = threading.Event(), []
    api.on_pull = lambda ref: None if ref == "mirror/dl:1" else overlapped.append(downloading.wait(timeout=10))
    run = api.run
    api.run = lambda container: (downloading.set(), run(container))[1]
    result = CliRunner().invoke(cli, ["pull", str(profile), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert api.pulls[0] == "mirror/dl:1" and len(api.pulls) == len(api.pullable)
    assert len(overlapped) == len(api.pullable) - 1 and all(overlapped)
    assert f"Downloaded {len(plan.caches)} model(s) with mirror/dl:1" in result.stdout


def test_lock_resolves_the_images_as_written(
    client: FakeClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def resolve(c: Any, image: str) -> dict[str, Any]:
        return {
            "digest": "sha256:" + "ab" * 32,
            "pinned": image.split(":")[0] + "@sha256:" + "ab" * 32,
            "id": "sha256:1",
        }

    monkeypatch.setattr(images, "resolve", mock.create_autospec(images.resolve, side_effect=resolve))
    profile = standins_profile(tmp_path)
    result = CliRunner().invoke(cli, ["lock", str(profile)])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "site.lock.json").read_text())["images"]
    assert set(written) == {s.image for s in commands.load(str(profile), pinned=False).services}
    assert "albert-deploy-test/redis:1 -> albert-deploy-test/redis@sha256:" in result.stdout


def test_offline_up_refuses_what_is_missing_before_anything_starts(
    client: FakeClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = standins_profile(tmp_path, offline=True)
    plan = commands.load(str(profile))
    _with_images(client, [s.image for s in plan.services if s.name != "redis"])
    monkeypatch.setattr(
        images, "local_images", lambda c, refs, locked: ({r: client.api.images.get(r, {}).get("Id") for r in refs}, {})
    )
    started = mock.Mock(side_effect=AssertionError("nothing may start"))
    monkeypatch.setattr("albert_deploy.converge.apply.up", started)
    with pytest.raises(OfflineError) as refused:
        commands.up(str(profile), tmp_path / "out")
    message = str(refused.value)
    assert "image albert-deploy-test/redis:1" in message
    assert "model intfloat/multilingual-e5-large (volume albert-standins_multilingual-e5-large-cache)" in message
    assert "albert-deploy pull" in message and "albert-deploy load FILE" in message


def test_offline_check_passes_when_every_image_and_cache_is_here(client: FakeClient, tmp_path: Path) -> None:
    from albert_deploy.converge.apply import prepare

    plan = commands.load(str(standins_profile(tmp_path, offline=True)))
    _with_images(client, [s.image for s in plan.services])
    for job in plan.caches:
        client.api.volume_data[f"{plan.project}_{job.volume}"] = volume_tar({"snapshots/1/w": b"w"})
    client.api.volume_data[f"{plan.project}_{ASSET.volume}"] = volume_tar({ASSET.cache_file: ENCODING})
    offline.refuse_missing_offline(plan, prepare(plan, tmp_path / "out", write=False))
    # One check per model, in the server's own image, and one of the tiktoken file in the API's.
    assert len(client.api.containers) == len(plan.caches) + 1
    api = next(s.image for s in plan.services if s.role == "api")
    assert {c["image"] for c in client.api.containers.values()} == {j.image for j in plan.caches} | {api}


# --- bundle and load -----------------------------------------------------------------------------


def _bundled(client: FakeClient, tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    profile = standins_profile(tmp_path)
    plan = commands.load(str(profile))
    _with_images(client, [s.image for s in plan.services])
    for job in plan.caches:
        client.api.volume_data[f"{plan.project}_{job.volume}"] = volume_tar({"snapshots/1/w": job.model_id.encode()})
    client.api.volume_data[f"{plan.project}_{ASSET.volume}"] = volume_tar({ASSET.cache_file: ENCODING})
    target = tmp_path / "site.bundle.tar"
    result = CliRunner().invoke(cli, ["bundle", str(profile), "-o", str(target), "--json"])
    assert result.exit_code == 0, result.output
    return profile, target, json.loads(result.stdout)


def test_bundle_then_load_restores_images_tags_volumes_and_files(
    client: FakeClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile, target, written = _bundled(client, tmp_path)
    plan = commands.load(str(profile))
    with tarfile.open(target) as tar:
        names = tar.getnames()
    assert names[0] == "manifest.json" and "images.tar" in names and "profile/site.yaml" in names
    assert not any(n.endswith(".env") for n in names)  # secrets stay on their host
    assert sorted(written["volumes"]) == sorted(
        f"{plan.project}_{v}" for v in [*(j.volume for j in plan.caches), ASSET.volume]
    )
    volumes = dict(client.api.volume_data)

    there = FakeClient()  # the offline host
    monkeypatch.setattr(engine, "connect", lambda: there)
    for i in range(len({s.image for s in plan.services})):  # the ids _with_images gave them
        there.api.images[f"sha256:{i:064d}"] = {"Id": f"sha256:{i:064d}", "RepoTags": []}  # loaded, untagged
    out, profiles = tmp_path / "there" / "deploy", tmp_path / "there" / "profiles"
    result = CliRunner().invoke(cli, ["load", str(target), "-o", str(out), "--profile-dir", str(profiles)])
    assert result.exit_code == 0, result.output
    assert there.api.loaded and there.api.loaded[0].startswith(b"saved:")
    assert {(repo, tag) for _, repo, tag in there.api.tags} >= {("albert-deploy-test/redis", "1")}
    assert {v: there.api.volume_data[v] for v in volumes} == volumes
    assert (out / "compose.yml").is_file() and not (out / ".env").exists()
    assert (profiles / "site.yaml").read_bytes() == profile.read_bytes()
    assert "Verified and loaded" in result.stdout and "tagged albert-deploy-test/redis:1" in result.stdout


def test_load_keeps_this_hosts_env_and_refuses_a_different_profile(
    client: FakeClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, target, _ = _bundled(client, tmp_path)
    out, profiles = tmp_path / "out", tmp_path / "profiles"
    out.mkdir()
    (out / ".env").write_text("MASTER_KEY=kept\n")
    profiles.mkdir()
    (profiles / "site.yaml").write_text("project: other\n")
    with pytest.raises(BundleError, match=r"site\.yaml"):
        unbundle.load_bundle(lambda: client, target, out, profiles)
    (profiles / "site.yaml").unlink()
    client.api.load_events = [{"error": "layer missing"}]
    with pytest.raises(DockerError, match="the daemon refused the images: layer missing"):
        unbundle.load_bundle(lambda: client, target, out, profiles)
    client.api.load_events = []
    unbundle.load_bundle(lambda: client, target, out, profiles)
    assert (out / ".env").read_text() == "MASTER_KEY=kept\n"


def test_bundle_names_what_it_cannot_save(client: FakeClient, tmp_path: Path) -> None:
    refs = ["redis:7"]
    with pytest.raises(DockerError, match=r"cannot save image redis:7 .*albert-deploy pull"):
        bundle.write_bundle(client, "p", refs, [], {}, tmp_path / "b.tar")
    client.api.add_image("redis:7", "sha256:7", tags=["redis:7", "docker.io/library/redis:latest", "other/redis:7"])
    tags = {"redis:7": {"id": "sha256:7", "tags": ["docker.io/library/redis:latest", "redis:7"]}}  # not other/redis
    assert bundle.image_tags(client, refs) == tags
    client.api.save_error = docker.errors.APIError("disk full")
    with pytest.raises(DockerError, match=r"cannot save the images \(disk full\)"):
        bundle.write_bundle(client, "p", refs, [], {}, tmp_path / "b.tar")
    client.api.save_error = None
    job = ModelCache("e5", "intfloat/e5", "redis:7", "e5-cache", "/data", "/data", "")
    with pytest.raises(BundleError, match="volume p_e5-cache does not exist: run `albert-deploy pull` first"):
        bundle.write_bundle(client, "p", refs, [job], {}, tmp_path / "b.tar")
    with pytest.raises(BundleError, match="cannot write there"):
        bundle.write_bundle(client, "p", refs, [], {}, tmp_path / "missing" / "b.tar")
    assert not list(tmp_path.glob("*.tar")) and not list(tmp_path.glob(".b.tar.*"))  # nothing half-written


def test_tags_are_restored_only_onto_the_bundled_image(client: FakeClient) -> None:
    client.api.add_image("sha256:1", "sha256:1", tags=[])
    recorded = {
        "a:1": {"id": "sha256:1", "tags": ["a:1"]},
        "b:1": {"id": "sha256:2", "tags": ["b:1"]},  # not loaded: its tag is not given to anything
        "c@sha256:9": {"id": "", "tags": ["c:2"]},
    }
    restored, skipped = unbundle._restore_tags(client, recorded)
    assert restored == ["a:1"] and client.api.tags == [("sha256:1", "a", "1")]
    assert skipped == ["b:1 (image sha256:2 not loaded)", "c:2 (image ? not loaded)"]
