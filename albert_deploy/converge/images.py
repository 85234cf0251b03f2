"""Images: which are present, pulling them with progress."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker.errors
from docker.utils import parse_repository_tag

from albert_deploy.converge.engine import explanation
from albert_deploy.converge.progress import Reporter
from albert_deploy.errors import DockerError, LockError


def image_ids(client: Any, images: set[str]) -> dict[str, str | None]:
    def one(ref: str) -> str | None:
        try:
            return str(client.api.inspect_image(ref)["Id"])
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as err:
            if err.status_code == 404:
                return None
            raise

    with ThreadPoolExecutor(max_workers=8) as pool:
        ordered = sorted(images)
        return dict(zip(ordered, pool.map(one, ordered), strict=True))


def by_locked_id(
    ids: Mapping[str, str | None], locked_ids: Mapping[str, str], found: Mapping[str, str | None]
) -> tuple[dict[str, str | None], dict[str, str]]:
    """The resolution rule. ``ids``: each image's id by its own reference (None: absent);
    ``locked_ids``: pinned reference -> the id its lock entry recorded; ``found``: those ids as
    inspected here. An absent pinned reference whose locked id is present is that image: returns
    every image's id, and the reference to run for those found only by id (the id itself)."""
    result, run_as = dict(ids), {}
    for image, image_id in ids.items():
        wanted = locked_ids.get(image)
        # Only an exact id match: the id is the config digest, as strict a pin as the registry digest.
        if image_id is None and wanted and found.get(wanted) == wanted:
            result[image], run_as[image] = wanted, wanted
    return result, run_as


def local_images(
    client: Any, images: set[str], locked_ids: Mapping[str, str] | None = None
) -> tuple[dict[str, str | None], dict[str, str]]:
    """``image_ids``, plus what the lock allows: ``docker load`` (of a bundle) drops RepoDigests, so
    ``repository@sha256:…`` no longer resolves there while the same image is present by its id."""
    locked_ids = locked_ids or {}
    ids = image_ids(client, images)
    wanted = {locked_ids[i] for i, v in ids.items() if v is None and i in locked_ids}
    return by_locked_id(ids, locked_ids, image_ids(client, wanted) if wanted else {})


def pull(client: Any, image: str, services: list[str], reporter: Reporter) -> str:
    """Pull one image, reporting progress on the services that use it; return its id."""
    repository, tag = parse_repository_tag(image)
    layers: dict[str, tuple[int, int]] = {}
    try:
        for event in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
            if "error" in event:
                raise _not_pullable(image, str(event["error"]))
            detail = event.get("progressDetail") or {}
            if event.get("id") and detail.get("total"):
                layers[event["id"]] = (int(detail.get("current", 0)), int(detail["total"]))
            done, total = sum(c for c, _ in layers.values()), sum(t for _, t in layers.values())
            text = f"pulling {image}" + (f" {100 * done // total}%" if total else "")
            for service in services:
                reporter.update(service, state="pulling", detail=text)
        return str(client.api.inspect_image(image)["Id"])
    except docker.errors.APIError as err:
        raise _not_pullable(image, explanation(err)) from None


def _not_pullable(image: str, why: str) -> DockerError:
    return DockerError(
        f"image {image} is not present locally and cannot be pulled ({why}); "
        "check its name in the profile, log in to its registry, or load it with `docker load`"
    )


PARALLEL_PULLS = 4  # `--parallel-pulls` of `up` and `pull`


def pull_missing(
    client: Any, wanted: Mapping[str, list[str]], reporter: Reporter, parallel: int = PARALLEL_PULLS
) -> dict[str, str]:
    """Pull each image of ``wanted`` (image -> the services that use it, whose progress shows it),
    ``parallel`` at a time; return their ids. Raises the first failure once every pull has ended."""
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = {image: pool.submit(pull, client, image, services, reporter) for image, services in wanted.items()}
        return {image: future.result() for image, future in futures.items()}


def pull_all(
    client: Any, images: list[str], reporter: Reporter, parallel: int = PARALLEL_PULLS
) -> list[dict[str, Any]]:
    """Pull every image not present here (by its reference), ``parallel`` at a time, progress under the
    image's own name; one row per image, ``pulled`` false for one already present."""
    present = image_ids(client, set(images))
    for image in images:
        if present[image]:
            reporter.update(image, state="present", detail=str(present[image])[:19])
    pulled = pull_missing(client, {i: [i] for i in images if not present[i]}, reporter, parallel)
    for image, image_id in pulled.items():
        reporter.update(image, state="pulled", detail=image_id[:19])
    return [{"image": i, "id": present[i] or pulled[i], "pulled": i in pulled} for i in images]


def resolve(client: Any, image: str) -> dict[str, Any]:
    """The lock entry of ``image``: its registry digest from the local image, else from its registry."""
    repository = parse_repository_tag(image)[0]
    try:
        info = client.api.inspect_image(image)
    except docker.errors.NotFound:
        info = None
    if info is not None:
        mine = [d for d in info.get("RepoDigests") or [] if d.split("@", 1)[0] == repository]
        if mine:
            return {"digest": mine[0].split("@", 1)[1], "pinned": mine[0], "id": info["Id"]}
        # Built or loaded here: there is no registry digest to pin it to.
        return {"digest": None, "pinned": None, "id": info["Id"], "local_only": True}
    try:
        digest = client.api.inspect_distribution(image)["Descriptor"]["digest"]
    except docker.errors.APIError as err:
        raise LockError(
            f"image {image} is not present here and its registry does not answer ({explanation(err)}): "
            "pull it first (`albert-deploy pull`), or check its name in the profile"
        ) from None
    return {"digest": digest, "pinned": f"{repository}@{digest}", "id": None}
