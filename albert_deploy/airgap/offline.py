"""Day-2 and air-gapped operations on the Docker side: pull, lock, and the offline check before `up`."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from albert_deploy.airgap import modelcache
from albert_deploy.converge import containers, engine, images
from albert_deploy.converge.apply import Applied
from albert_deploy.converge.progress import Reporter, Silent
from albert_deploy.errors import OfflineError
from albert_deploy.profile.model import Profile


def pull(profile: Profile, applied: Applied, reporter: Reporter | None = None) -> dict[str, Any]:
    """Every image the stack needs (and the downloader's), then every hosted model's weights."""
    reporter = reporter or Silent()
    client = engine.connect()
    stack = applied.plan
    todo = modelcache.jobs(profile, stack)
    downloader = modelcache.downloader_image(profile)
    wanted = sorted({s.image for s in stack.services} | ({downloader} if todo else set()))
    # The environment first, then what the operator put in .env; never printed, never on a command line.
    token = os.environ.get("HF_TOKEN") or applied.env.get("HF_TOKEN") or None
    reporter.begin([*wanted, *(f"model {j.service}" for j in todo)])
    try:
        pulled = images.pull_all(client, wanted, reporter)
        downloads = modelcache.download_all(client, stack.project, todo, downloader, token, reporter)
    finally:
        reporter.end()
    return {
        "project": stack.project,
        "images": pulled,
        "models": downloads,
        "downloader": downloader if todo else None,
        "token": "set" if token else "not set",
    }


def lock_entries(stack_images: list[str]) -> dict[str, dict[str, Any]]:
    client = engine.connect()
    return {image: images.resolve(client, image) for image in sorted(set(stack_images))}


def offline_check(profile: Profile, applied: Applied) -> None:
    """With ``offline: true``: refuse before anything starts when an image or a model cache is missing."""
    client = engine.connect()
    # An image present only by the id its lock entry recorded (a loaded bundle) counts as present.
    present, run_as = images.local_images(client, {s.image for s in applied.plan.services}, applied.plan.locked_ids)
    missing = [f"image {image}" for image, image_id in sorted(present.items()) if image_id is None]
    todo = [
        replace(j, image=run_as.get(j.image, j.image))
        for j in modelcache.jobs(profile, applied.plan)
        if present.get(j.image)
    ]
    missing += [
        f"model {j.model_id} (volume {containers.volume_name(applied.plan.project, j.volume)})"
        for j in modelcache.missing_caches(client, applied.plan.project, todo)
    ]
    if missing:
        raise OfflineError(
            f"offline: true, and this host is missing {', '.join(missing)}.\n"
            "Fix: on a connected host run `albert-deploy pull` then `albert-deploy bundle -o FILE`, "
            "and here `albert-deploy load FILE`"
        )
