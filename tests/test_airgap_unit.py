"""Lock file, pins, model-cache layout, start order and bundle verification: no Docker daemon needed."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from albert_deploy.airgap import bundle, modelcache, unbundle
from albert_deploy.cli import cli
from albert_deploy.commands import load
from albert_deploy.errors import BundleError, LockError
from albert_deploy.profile import lock as lockfile
from albert_deploy.render.files import render_plan
from tests.helpers import FULL, fixed_env, standins_profile

DIGEST = "sha256:" + "ab" * 32


def test_the_lock_pins_images_and_render_writes_the_digest(tmp_path: Path) -> None:
    profile = standins_profile(tmp_path)
    assert lockfile.lock_path(str(profile)) == tmp_path / "site.lock.json"
    assert lockfile.lock_path(None) == Path("default.lock.json")  # the embedded default: current directory
    entries = {
        "albert-deploy-test/redis:1": {"digest": DIGEST, "pinned": f"albert-deploy-test/redis@{DIGEST}", "id": None},
        "albert-deploy-test/qdrant:1": {"digest": None, "pinned": None, "id": "sha256:1", "local_only": True},
    }
    lockfile.write_lock(str(profile), str(profile), entries)
    plan = load(str(profile))
    images = {s.name: s.image for s in plan.services}
    assert images["redis"] == f"albert-deploy-test/redis@{DIGEST}"
    assert images["qdrant"] == "albert-deploy-test/qdrant:1"  # local only: left as it is
    compose = render_plan(plan, fixed_env(plan.secrets)).files["compose.yml"]
    assert f'image: "albert-deploy-test/redis@{DIGEST}"' in compose
    # `lock` itself resolves the profile's own images, not the pinned ones.
    assert {s.image for s in load(str(profile), pinned=False).services} >= {"albert-deploy-test/redis:1"}


def test_a_broken_lock_file_is_named_with_the_fix(tmp_path: Path) -> None:
    profile = standins_profile(tmp_path)
    (tmp_path / "site.lock.json").write_text("{not json")
    result = CliRunner().invoke(cli, ["render", str(profile), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "site.lock.json: cannot read it" in result.stderr and "albert-deploy lock" in result.stderr
    with pytest.raises(LockError):
        load(str(profile))


def test_each_server_gets_the_cache_layout_it_reads() -> None:
    plan = load(None)
    jobs = {j.model_id: j for j in plan.caches}
    vllm, tei = jobs["AgentPublic/guillaumetell-7b"], jobs["intfloat/multilingual-e5-large"]
    whisper = jobs["openai/whisper-large-v3-turbo"]
    assert (vllm.mount, vllm.hub_cache, vllm.user) == ("/root/.cache/huggingface", "/root/.cache/huggingface/hub", "")
    assert (tei.mount, tei.hub_cache) == ("/data", "/data")  # TEI 1.8: HUGGINGFACE_HUB_CACHE=/data
    assert whisper.hub_cache == "/home/whisper/.cache/huggingface/hub" and whisper.user == "1100"
    assert tei.model_dir == "/data/models--intfloat--multilingual-e5-large"
    assert vllm.volume == "guillaumetell-7b-cache"
    # The token is never an argument: only the model, the directories and the owner are.
    assert "HF_TOKEN" not in modelcache.DOWNLOAD_SCRIPT.split("snapshot_download(")[1].split(")")[0]
    assert plan.downloader_image == "vllm/vllm-openai:v0.11.0"


def test_the_downloader_image_is_a_profile_key(tmp_path: Path) -> None:
    plan = load(str(standins_profile(tmp_path, images={"downloader": "mirror.local/vllm:1"})))
    assert plan.downloader_image == "mirror.local/vllm:1"
    wrong = CliRunner().invoke(cli, ["validate", str(standins_profile(tmp_path, images={"downloadr": "x"}))])
    assert wrong.exit_code == 1 and "downloader" in wrong.stderr


def test_start_order_per_gpu_follows_the_depends_on_chain(tmp_path: Path) -> None:
    data = yaml.safe_load(FULL.read_text())
    data["gpus"]["count"] = 2
    for m in data["models"]:
        m["gpus"] = [1] if "e5" in m["model"] else [0]
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(data))
    plan = load(str(path))
    order = {o.gpu: o.steps for o in plan.start_order}
    assert order["1"] == (("multilingual-e5-large",),)
    (first,), together = order["0"]
    deps = {s.name: s.depends_on for s in plan.services}
    assert first == "guillaumetell-7b" and together == ("bge-reranker-v2-m3", "whisper-large-v3-turbo")
    assert all(deps[name] == (first,) for name in together)
    assert deps["multilingual-e5-large"] == ()


def _archive(tmp_path: Path, members: dict[str, bytes], listed: dict[str, bytes] | None = None) -> Path:
    listed = members if listed is None else listed
    manifest = {
        "format": bundle.FORMAT, "project": "p", "images": [], "volumes": {},
        "members": {n: {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in listed.items()},
    }  # fmt: skip
    path = tmp_path / "b.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in {"manifest.json": json.dumps(manifest).encode(), **members}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_verify_names_the_bad_member_before_anything_loads(tmp_path: Path) -> None:
    good = {"images.tar": b"layers", "rendered/compose.yml": b"services: {}\n"}
    assert unbundle.verify(_archive(tmp_path, good))["project"] == "p"
    with pytest.raises(BundleError, match=r"member rendered/compose\.yml is corrupted"):
        unbundle.verify(_archive(tmp_path, {**good, "rendered/compose.yml": b"services: {x}\n"}, good))
    with pytest.raises(BundleError, match=r"member images\.tar is missing"):
        unbundle.verify(_archive(tmp_path, {"rendered/compose.yml": good["rendered/compose.yml"]}, good))
    with pytest.raises(BundleError, match="member extra is not in the manifest"):
        unbundle.verify(_archive(tmp_path, {**good, "extra": b"x"}, good))

    def never() -> None:
        raise AssertionError("a corrupted bundle must not reach the daemon")

    corrupted = _archive(tmp_path, {**good, "images.tar": b"LAYERS"}, good)
    with pytest.raises(BundleError, match=r"images\.tar is corrupted"):
        unbundle.load_bundle(never, corrupted, tmp_path / "out", tmp_path)
    assert not (tmp_path / "out").exists()
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all")
    result = CliRunner().invoke(cli, ["load", str(tmp_path / "junk.tar")])
    assert result.exit_code == 1 and "junk.tar" in result.stderr


def test_a_pinned_image_absent_here_resolves_to_its_locked_id_only() -> None:
    import docker.errors

    from albert_deploy.converge import images

    pinned, other = f"reg/redis@{DIGEST}", "reg/qdrant@sha256:" + "cd" * 32
    loaded = "sha256:" + "11" * 32
    # After `docker load`: the reference is gone, the id the lock recorded is there.
    ids, run_as = images.by_locked_id({pinned: None}, {pinned: loaded}, {loaded: loaded})
    assert ids == {pinned: loaded} and run_as == {pinned: loaded}
    # Present by its own reference: run by it, whatever the lock says.
    assert images.by_locked_id({pinned: "sha256:22"}, {pinned: loaded}, {loaded: loaded}) == ({pinned: "sha256:22"}, {})
    # The locked id absent too, or another id, or no id locked: missing (pulled, or refused offline).
    assert images.by_locked_id({pinned: None}, {pinned: loaded}, {loaded: None}) == ({pinned: None}, {})
    assert images.by_locked_id({pinned: None}, {pinned: loaded}, {loaded: "sha256:33"}) == ({pinned: None}, {})
    assert images.by_locked_id({other: None}, {pinned: loaded}, {loaded: loaded}) == ({other: None}, {})

    class Api:
        def __init__(self) -> None:
            self.asked: list[str] = []

        def inspect_image(self, ref: str) -> dict[str, str]:
            self.asked.append(ref)
            if ref != loaded:
                raise docker.errors.ImageNotFound(ref)
            return {"Id": loaded}

    client = type("Client", (), {"api": Api()})()
    assert images.local_images(client, {pinned, other}, {pinned: loaded}) == (
        {pinned: loaded, other: None}, {pinned: loaded})  # fmt: skip
    assert sorted(client.api.asked) == sorted([pinned, other, loaded])


def test_the_lock_hands_its_ids_to_the_stack_and_the_container_runs_by_id(tmp_path: Path) -> None:
    from albert_deploy.converge import containers
    from albert_deploy.converge.apply import prepare

    profile = standins_profile(tmp_path)
    image_id = "sha256:" + "11" * 32
    entries = {
        "albert-deploy-test/redis:1": {
            "digest": DIGEST,
            "pinned": f"albert-deploy-test/redis@{DIGEST}",
            "id": image_id,
        },
        "albert-deploy-test/qdrant:1": {"digest": None, "pinned": None, "id": "sha256:1", "local_only": True},
    }
    lockfile.write_lock(str(profile), str(profile), entries)
    plan = load(str(profile))
    assert plan.locked_ids == {f"albert-deploy-test/redis@{DIGEST}": image_id}
    project = prepare(plan, tmp_path / "out", write=False).project
    request = containers.create_request(project, "redis", {}, image_id)
    assert request["image"] == image_id
    assert containers.create_request(project, "redis", {})["image"] == f"albert-deploy-test/redis@{DIGEST}"
    # The compose entry (hence the config hash) keeps the pinned reference whichever form runs.
    assert project.services["redis"].image == f"albert-deploy-test/redis@{DIGEST}"


def test_bundle_refuses_a_lock_without_image_ids(tmp_path: Path) -> None:
    profile = standins_profile(tmp_path)
    entries = {"albert-deploy-test/redis:1": {"digest": DIGEST, "pinned": f"albert-deploy-test/redis@{DIGEST}",
                                              "id": None}}  # fmt: skip
    lockfile.write_lock(str(profile), str(profile), entries)
    result = CliRunner().invoke(cli, ["bundle", str(profile), "-o", str(tmp_path / "b.tar")])
    assert result.exit_code == 1
    assert "no image id recorded for albert-deploy-test/redis:1" in result.stderr
    assert "albert-deploy lock" in result.stderr and not (tmp_path / "b.tar").exists()
