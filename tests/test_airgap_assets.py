"""Albert 0.2.0 loads tiktoken's o200k_base file at start: the API mounts a cache volume with
TIKTOKEN_CACHE_DIR set, `pull` fetches the file (checked by its sha256), `bundle` and `load` carry and
check it, and `offline: true` refuses a host without it. In-memory Docker client (tests/fakedocker.py)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from albert_deploy import commands
from albert_deploy.airgap import assets, offline, unbundle
from albert_deploy.converge.apply import prepare
from albert_deploy.converge.progress import Silent
from albert_deploy.errors import BundleError, DockerError, OfflineError, RenderError
from albert_deploy.plan.assets import O200K_URL, TIKTOKEN_O200K, URL_OVERRIDE_ENV
from albert_deploy.plan.build import build_plan
from albert_deploy.profile.load import validate_profile
from albert_deploy.render.files import render_plan
from albert_deploy.render.kubernetes.render import render_kubernetes
from tests.fakedocker import FakeClient, connected_fake, volume_tar
from tests.helpers import REPO, standins_profile
from tests.test_airgap_fake import ASSET, ENCODING


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    return connected_fake(monkeypatch)


def test_the_asset_is_tiktokens_own_file_under_tiktokens_own_name() -> None:
    # tiktoken 0.9.0 names the cache file after the sha1 of the URL (tiktoken/load.py:48).
    assert TIKTOKEN_O200K.url == "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    assert TIKTOKEN_O200K.cache_file == "fb374d419588a4632f3f557e76b4b70aebbca790"
    assert TIKTOKEN_O200K.sha256 == "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"


def test_the_api_mounts_the_cache_and_offline_points_tiktoken_at_it() -> None:
    data = yaml.safe_load((REPO / "profiles" / "default.yaml").read_text())
    plan = build_plan(validate_profile(data, "p.yaml"), "p.yaml")
    assert plan.assets == (TIKTOKEN_O200K,)
    mount = "/tmp/data-gym-cache"  # tiktoken's default directory (tempfile.gettempdir())
    api = next(s for s in plan.services if s.role == "api")
    assert any(m.volume == "tiktoken-cache" and m.target == mount for m in api.mounts)
    # Online, TIKTOKEN_CACHE_DIR stays unset: tiktoken then ignores a failed write to an unfilled volume.
    assert "TIKTOKEN_CACHE_DIR" not in api.environment
    compose = yaml.safe_load(render_plan(plan).files["compose.yml"])["services"]["api"]
    assert {"type": "volume", "source": "tiktoken-cache", "target": mount, "read_only": False} in compose["volumes"]
    offline_plan = build_plan(validate_profile({**data, "offline": True}, "p.yaml"), "p.yaml")
    api = next(s for s in offline_plan.services if s.role == "api")
    assert api.environment["TIKTOKEN_CACHE_DIR"] == mount
    compose = yaml.safe_load(render_plan(offline_plan).files["compose.yml"])["services"]["api"]
    assert compose["environment"]["TIKTOKEN_CACHE_DIR"] == mount
    # Kubernetes: the API downloads it into its own volume; offline, nothing could carry it (test_kubernetes).
    manifests = render_kubernetes(plan).files["app/deployments.yaml"]
    api_pod = next(d for d in yaml.safe_load_all(manifests) if d and d["metadata"]["name"] == "api")["spec"]["template"]
    (container,) = api_pod["spec"]["containers"]
    assert "TIKTOKEN_CACHE_DIR" not in {e["name"] for e in container["env"]}
    assert {"name": "tiktoken-cache", "mountPath": mount} in container["volumeMounts"]
    with pytest.raises(RenderError, match="a ConfigMap holds at most 1 MiB"):
        render_kubernetes(offline_plan)
    legacy = yaml.safe_load((REPO / "profiles" / "api-0.0.3.yaml").read_text())
    assert build_plan(validate_profile(legacy, "p.yaml"), "p.yaml").assets == ()  # 0.0.3 uses no tokenizer


def test_pull_downloads_it_in_the_downloader_and_refuses_another_sha256(client: FakeClient) -> None:
    rows = assets.download_assets(client, "p", [ASSET], "dl:1", Silent())
    assert rows == [{"asset": ASSET.name, "volume": "p_tiktoken-cache", "path": ASSET.path, "sha256": ASSET.sha256}]
    (created,) = client.api.containers.values()
    assert created["image"] == "dl:1" and created["command"] == [O200K_URL, ASSET.path, ASSET.sha256, "1100"]
    assert created["host_config"]["network_mode"] is None  # the default network: the real URL
    with tarfile.open(fileobj=io.BytesIO(client.api.volume_data["p_tiktoken-cache"])) as tar:
        assert assets.sha256_in_volume_tar(io.BytesIO(client.api.volume_data["p_tiktoken-cache"]), ASSET.cache_file)
        assert tar.getnames() == [ASSET.cache_file]
    client.api.served[ASSET.url] = b"tampered"
    client.api.volume_data.clear()
    with pytest.raises(DockerError, match=r"downloading the tiktoken o200k_base encoding .* refused: sha256"):
        assets.download_assets(client, "p", [ASSET], "dl:1", Silent())
    assert assets.sha256_in_volume_tar(io.BytesIO(client.api.volume_data["p_tiktoken-cache"]), ASSET.cache_file) is None


def test_the_test_only_url_override_goes_through_the_host_network(
    client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(URL_OVERRIDE_ENV, "http://127.0.0.1:8765/o200k_base.tiktoken")
    client.api.served["http://127.0.0.1:8765/o200k_base.tiktoken"] = ENCODING
    assets.download_assets(client, "p", [ASSET], "dl:1", Silent())
    (created,) = client.api.containers.values()
    assert created["command"][0] == "http://127.0.0.1:8765/o200k_base.tiktoken"
    assert created["command"][1] == f"/tmp/data-gym-cache/{TIKTOKEN_O200K.cache_file}"  # still tiktoken's name
    assert created["host_config"]["network_mode"] == "host"


@pytest.mark.parametrize("content", [None, b"other"], ids=["missing", "altered"])
def test_offline_refuses_a_host_without_the_file(client: FakeClient, tmp_path: Path, content: bytes | None) -> None:
    plan = commands.load(str(standins_profile(tmp_path, offline=True)))
    for i, image in enumerate(sorted({s.image for s in plan.services})):
        client.api.add_image(image, f"sha256:{i:064d}")
    for job in plan.caches:
        client.api.volume_data[f"{plan.project}_{job.volume}"] = volume_tar({"snapshots/1/w": b"w"})
    if content is not None:
        client.api.volume_data[f"{plan.project}_{ASSET.volume}"] = volume_tar({ASSET.cache_file: content})
    with pytest.raises(OfflineError) as refused:
        offline.refuse_missing_offline(plan, prepare(plan, tmp_path / "out", write=False))
    message = str(refused.value)
    assert "missing the tiktoken o200k_base encoding (fb374d419588a4632f3f557e76b4b70aebbca790" in message
    assert "volume albert-standins_tiktoken-cache" in message and "albert-deploy pull" in message
    checks = [c for c in client.api.containers.values() if "hashlib" in " ".join(c["entrypoint"])]
    assert all(c["host_config"]["network_mode"] == "none" for c in checks)


def _plan_on_host(client: FakeClient, tmp_path: Path, asset_file: dict[str, bytes]) -> Path:
    profile = standins_profile(tmp_path)
    plan = commands.load(str(profile))
    for i, image in enumerate(sorted({s.image for s in plan.services})):
        client.api.add_image(image, f"sha256:{i:064d}")
    for job in plan.caches:
        client.api.volume_data[f"{plan.project}_{job.volume}"] = volume_tar({"snapshots/1/w": b"w"})
    client.api.volume_data[f"{plan.project}_{ASSET.volume}"] = volume_tar(asset_file)
    return profile


def test_bundle_refuses_a_volume_without_the_file(client: FakeClient, tmp_path: Path) -> None:
    profile = _plan_on_host(client, tmp_path, {"other": b"x"})
    with pytest.raises(BundleError, match=r"lacks the tiktoken o200k_base encoding .* run `albert-deploy pull`"):
        commands.bundle(str(profile), tmp_path / "b.tar")
    assert not (tmp_path / "b.tar").exists()


def test_load_checks_the_file_by_its_sha256(client: FakeClient, tmp_path: Path) -> None:
    profile = _plan_on_host(client, tmp_path, {ASSET.cache_file: ENCODING})
    target = tmp_path / "b.tar"
    commands.bundle(str(profile), target)
    manifest = unbundle.verify(target)
    assert manifest["volumes"]["albert-standins_tiktoken-cache"]["file"] == {
        "name": ASSET.cache_file,
        "sha256": ASSET.sha256,
    }
    # A bundle whose members are intact but whose tiktoken file is not the expected one is refused.
    forged = tmp_path / "forged.tar"
    with tarfile.open(target) as old, tarfile.open(forged, "w", format=tarfile.PAX_FORMAT) as new:
        for member in old.getmembers():
            data = old.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "manifest.json":
                doc = json.loads(data)
                doc["volumes"]["albert-standins_tiktoken-cache"]["file"]["sha256"] = TIKTOKEN_O200K.sha256
                data = json.dumps(doc).encode()
                member.size = len(data)
            new.addfile(member, io.BytesIO(data))
    with pytest.raises(BundleError, match=r"does not hold fb374d41\w+ with sha256 446a9538.*Nothing was loaded"):
        unbundle.verify(forged)
