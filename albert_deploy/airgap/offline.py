"""Day-2 and air-gapped operations on the Docker side: pull, lock, and the offline refusal before `up`."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from albert_deploy.airgap import assets, modelcache
from albert_deploy.converge import containers, engine, images
from albert_deploy.converge.apply import Applied
from albert_deploy.converge.progress import Reporter, Silent
from albert_deploy.errors import OfflineError
from albert_deploy.plan.build import Plan


def pull(applied: Applied, reporter: Reporter | None = None, parallel: int = images.PARALLEL_PULLS) -> dict[str, Any]:
    """Every image the plan needs (and the downloader's) not already here, and every hosted model's
    weights: the downloader's image first, then the other images ``parallel`` at a time *while* the
    models download ``parallel`` at a time (a registry and the Hugging Face hub are two links to
    fill), then the release's assets."""
    reporter = reporter or Silent()
    client = engine.connect()
    plan = applied.plan
    todo = list(plan.caches)
    downloader = plan.downloader_image
    wanted = sorted({s.image for s in plan.services} | ({downloader} if todo or plan.assets else set()))
    # The environment first, then what the operator put in .env; never printed, never on a command line.
    token = os.environ.get("HF_TOKEN") or applied.env.get("HF_TOKEN") or None
    reporter.begin([*wanted, *(f"model {j.service}" for j in todo), *(f"asset {a.volume}" for a in plan.assets)])
    try:
        first = [downloader] if todo and downloader in wanted else []
        pulled = images.pull_all(client, first, reporter, parallel)
        rest = [image for image in wanted if image not in first]
        with ThreadPoolExecutor(max_workers=2) as both:
            pulling = both.submit(images.pull_all, client, rest, reporter, parallel)
            downloads = modelcache.download_all(client, plan.project, todo, downloader, token, reporter, parallel)
            pulled = sorted([*pulled, *pulling.result()], key=lambda row: str(row["image"]))
        fetched = assets.download_assets(client, plan.project, list(plan.assets), downloader, reporter)
    finally:
        reporter.end()
    return {
        "project": plan.project,
        "images": pulled,
        "models": downloads,
        "assets": fetched,
        "downloader": downloader if todo or plan.assets else None,
        "token": "set" if token else "not set",
    }


def lock_entries(stack_images: list[str]) -> dict[str, dict[str, Any]]:
    client = engine.connect()
    return {image: images.resolve(client, image) for image in sorted(set(stack_images))}


def refuse_missing_offline(plan: Plan, applied: Applied) -> None:
    """With ``offline: true``: refuse before anything starts when an image or a model cache is missing."""
    client = engine.connect()
    # An image present only by the id its lock entry recorded (a loaded bundle) counts as present.
    present, run_as = images.local_images(client, {s.image for s in plan.services}, plan.locked_ids)
    missing = [f"image {image}" for image, image_id in sorted(present.items()) if image_id is None]
    todo = [replace(j, image=run_as.get(j.image, j.image)) for j in plan.caches if present.get(j.image)]
    missing += [
        f"model {j.model_id} (volume {containers.volume_name(plan.project, j.volume)})"
        for j in modelcache.missing_caches(client, plan.project, todo)
    ]
    api_image = next(s.image for s in plan.services if s.role == "api")
    if plan.assets and present.get(api_image):  # checked in the API's own image, which has python3
        missing += [
            f"the {a.name} ({a.cache_file}, sha256 {a.sha256[:12]}…, volume "
            f"{containers.volume_name(plan.project, a.volume)})"
            for a in assets.missing_assets(client, plan.project, list(plan.assets), run_as.get(api_image, api_image))
        ]
    if missing:
        raise OfflineError(
            f"offline: true, and this host is missing {', '.join(missing)}.\n"
            "Fix: on a connected host run `albert-deploy pull` then `albert-deploy bundle -o FILE`, "
            "and here `albert-deploy load FILE`"
        )
