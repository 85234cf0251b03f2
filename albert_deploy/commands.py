"""One function per CLI command: profile -> plan -> render -> apply, returning plain data.

The CLI only parses options, calls one of these and prints what it returns. Each imports what it
uses, when it runs: `up` with nothing to change loads neither the profile nor the Docker SDK.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from albert_deploy.errors import LockError

if TYPE_CHECKING:
    from albert_deploy.plan.build import Plan
    from albert_deploy.profile.lock import Lock
    from albert_deploy.profile.model import Profile


def load(profile_path: str | None, pinned: bool = True) -> Plan:
    """The plan of a profile; with ``pinned``, images locked by ``albert-deploy lock`` run by digest."""
    return load_locked(profile_path, pinned)[0]


def load_locked(profile_path: str | None, pinned: bool = True) -> tuple[Plan, Lock | None]:
    """``load``, and the lock file it read (None: no lock file, or not ``pinned``)."""
    from albert_deploy.profile.load import load_profile

    return _planned(load_profile(profile_path), profile_path, pinned)


def _planned(profile: Profile, profile_path: str | None, pinned: bool = True) -> tuple[Plan, Lock | None]:
    from albert_deploy.plan.build import build_plan
    from albert_deploy.profile.load import DEFAULT_PROFILE
    from albert_deploy.profile.lock import read_lock

    lock = read_lock(profile_path) if pinned else None
    plan = build_plan(profile, profile_path or DEFAULT_PROFILE, lock.pins if lock else None, lock.ids if lock else None)
    return plan, lock


def validate(profile_path: str | None) -> dict[str, Any]:
    return _summary(load(profile_path))


def render(profile_path: str | None, out_dir: Path, target: str = "compose") -> dict[str, Any]:
    from albert_deploy.render.files import existing_env, render_plan, write_rendered

    plan = load(profile_path)
    if target == "kubernetes":
        from albert_deploy.render.kubernetes.render import render_into

        return {**_summary(plan), "output": str(out_dir.resolve()), **render_into(plan, out_dir)}
    rendered = render_plan(plan, existing_env(out_dir))
    change = write_rendered(rendered, out_dir)
    return {**_summary(plan), "output": str(out_dir.resolve()), "files": sorted(rendered.files), "change": change}


def placement(profile_path: str | None) -> dict[str, Any]:
    """Which GPU each model gets, its memory budget and the derived server flags."""
    from albert_deploy.placement.report import format_placement, placement_report
    from albert_deploy.plan.build import place_models
    from albert_deploy.profile.load import DEFAULT_PROFILE, load_profile

    source = profile_path or DEFAULT_PROFILE
    placed = place_models(load_profile(profile_path), source)
    return {"profile": source, **placement_report(placed), "text": format_placement(placed)}


def schema() -> dict[str, Any]:
    from albert_deploy.profile.load import profile_json_schema

    return profile_json_schema()


# --- converge: up, diff, down, status, logs, check (the Docker side is imported lazily) -------------


def up(
    profile_path: str | None,
    out_dir: Path,
    *,
    no_gpus: bool = False,
    timeouts: tuple[str, ...] = (),
    detach: bool = False,
    dry_run: bool = False,
    reporter: Any = None,
    parallel_pulls: int = 4,
) -> dict[str, Any]:
    """Render into ``out_dir``, then converge the stack (``dry_run``: say what would change).

    When the previous ``up`` left a stamp that still holds, nothing is loaded (``converge.fastpath``)."""
    from albert_deploy.converge import fastpath

    if dry_run:
        return diff(profile_path, out_dir, no_gpus=no_gpus)
    inputs = fastpath.Inputs(profile_path, out_dir, no_gpus)
    same = None if timeouts else fastpath.unchanged(inputs, detach, reporter)  # --timeout is checked in full
    if same is not None:
        return same
    fastpath.forget(out_dir)  # a failed `up` leaves no stamp
    from albert_deploy.converge import apply

    plan = load(profile_path)
    applied = apply.prepare(plan, out_dir, write=True, no_gpus=no_gpus)
    if plan.offline:  # refuse now rather than hang on a download inside a container
        from albert_deploy.airgap import offline as airgap

        airgap.refuse_missing_offline(plan, applied)
    # The host's GPUs are an input no file records, and offline checks the caches: no stamp for either.
    remember = inputs if not plan.gpus_detected and not plan.offline else None
    return apply.up(applied, timeouts=timeouts, detach=detach, reporter=reporter, parallel_pulls=parallel_pulls,
                    remember=remember)  # fmt: skip


def diff(profile_path: str | None, out_dir: Path, *, no_gpus: bool = False) -> dict[str, Any]:
    """Per service: create, recreate (why), start or nothing. Writes nothing, changes nothing."""
    from albert_deploy.converge import apply

    plan = load(profile_path)
    result = apply.diff(apply.prepare(plan, out_dir, write=False, no_gpus=no_gpus))
    start_order = [{"gpu": o.gpu, "steps": [list(step) for step in o.steps]} for o in plan.start_order]
    return {**result, "dry_run": True, "start_order": start_order}


def _project_name(profile_path: str | None, project: str | None) -> str:
    return project or load(profile_path).project


def down(profile_path: str | None, *, project: str | None = None, volumes: bool = False) -> dict[str, Any]:
    from albert_deploy.converge import apply

    return apply.down(_project_name(profile_path, project), volumes)


def status(
    profile_path: str | None, out_dir: Path, *, project: str | None = None, no_gpus: bool = False
) -> dict[str, Any]:
    """Containers of the project; drift against what the profile renders now (unless only -p is given)."""
    from albert_deploy.converge import apply

    if project and profile_path is None:
        return apply.status(project, None)
    plan, lock = load_locked(profile_path)
    locked = {}
    for s in plan.services:  # the service's image is the lock's pinned reference, or a tag it left alone
        entry = next((e for i, e in (lock.entries.items() if lock else []) if s.image in (i, e.get("pinned"))), None)
        if entry:
            locked[s.name] = entry
    applied = apply.prepare(plan, out_dir, write=False, no_gpus=no_gpus)
    return apply.status(project or plan.project, applied, locked)


def logs(
    profile_path: str | None, service: str, *, project: str | None = None, follow: bool = False, tail: int | None = None
) -> Any:
    from albert_deploy.converge import apply

    return apply.logs(_project_name(profile_path, project), service, follow, tail)


def check(profile_path: str | None, out_dir: Path, *, timeout: float = 10.0) -> dict[str, Any]:
    """The contract test: each model's endpoint, on its server and through the API."""
    from albert_deploy.converge import apply

    return apply.check(apply.prepare(load(profile_path), out_dir, write=False), timeout)


# --- air-gapped operations: pull, lock, bundle, load ---------------------------------------------


def pull(profile_path: str | None, out_dir: Path, reporter: Any = None, parallel: int = 4) -> dict[str, Any]:
    """Pull every image not already here, then download every hosted model into its server's cache volume."""
    from albert_deploy.airgap import offline as airgap
    from albert_deploy.converge import apply

    return airgap.pull(apply.prepare(load(profile_path), out_dir, write=False), reporter, parallel)


def lock(profile_path: str | None) -> dict[str, Any]:
    """Resolve every image of the profile (as written, not as locked) to its digest; write the lock file."""
    from albert_deploy.airgap import offline as airgap
    from albert_deploy.profile.lock import write_lock

    plan = load(profile_path, pinned=False)
    entries = airgap.lock_entries([s.image for s in plan.services])
    path = write_lock(profile_path, plan.source, entries)
    return {"lock": str(path), "images": [{"image": image, **entry} for image, entry in sorted(entries.items())]}


def bundle(profile_path: str | None, target: Path) -> dict[str, Any]:
    """One archive: the images, the model caches, the rendered files (without .env), the profile and its lock."""
    from albert_deploy.airgap import assets
    from albert_deploy.airgap import bundle as archive
    from albert_deploy.converge import engine
    from albert_deploy.render.files import render_plan
    from albert_deploy.resources import default_profile_text

    plan, locked = load_locked(profile_path)
    # compose.yml and config.yml hold ${NAME} references only: they do not depend on this host's .env.
    rendered = render_plan(plan)
    files = {f"rendered/{name}": rendered.files[name].encode() for name in archive.RENDERED}
    if profile_path is None:
        files["profile/default.yaml"] = default_profile_text().encode()
    else:
        files[f"profile/{Path(profile_path).name}"] = Path(profile_path).read_bytes()
    if locked is not None:
        if locked.unbundlable:  # `load` drops registry digests: without the id nothing would match them there
            raise LockError(
                f"{locked.path}: no image id recorded for {', '.join(locked.unbundlable)} (locked before it was "
                "pulled), so the offline host could not match it: run `albert-deploy pull`, then "
                "`albert-deploy lock` again"
            )
        files[f"profile/{Path(locked.path).name}"] = Path(locked.path).read_bytes()
    images = sorted({s.image for s in plan.services})
    api_image = next(s.image for s in plan.services if s.role == "api")
    jobs = [*plan.caches, *(assets.as_volume_job(a, api_image) for a in plan.assets)]
    checked = {a.volume: (a.cache_file, a.sha256) for a in plan.assets}
    return archive.write_bundle(engine.connect(), plan.project, images, jobs, files, target, checked)


def load_bundle(path: Path, out_dir: Path, profile_dir: Path) -> dict[str, Any]:
    """Verify every member of the bundle, then restore its images, volumes and files."""
    from albert_deploy.airgap import unbundle
    from albert_deploy.converge import engine

    return unbundle.load_bundle(engine.connect, path, out_dir, profile_dir)


# --- backup and restore of the databases -------------------------------------------------------


def backup(profile_path: str | None, target: Path, *, with_models: bool = False) -> dict[str, Any]:
    """One archive of the running stack's databases (online), with the profile's lock."""
    import json

    from albert_deploy.backup import take
    from albert_deploy.converge import engine

    plan, locked = load_locked(profile_path)
    lock = json.loads(Path(locked.path).read_text(encoding="utf-8")) if locked is not None else None
    return take.backup(engine.connect(), plan, lock, target, with_models)


def restore(path: Path, profile_path: str | None) -> dict[str, Any]:
    """Verify the archive, then restore it into the running stack of the profile."""
    from albert_deploy.backup import restore as back
    from albert_deploy.converge import engine

    return back.restore(engine.connect, load(profile_path), path)


def _summary(plan: Plan) -> dict[str, Any]:
    from albert_deploy.plan.spec import gpus_text

    return {
        "profile": plan.source,
        "project": plan.project,
        "release": plan.release.version,
        "services": [
            {
                "service": s.name,
                "role": s.role,
                "image": s.image,
                "gpus": gpus_text(s.gpu),
            }
            for s in plan.services
        ],
        "models": [
            {"name": e.name, "type": e.type, "served_name": e.served_name, "url": e.url, "hosted": e.hosted}
            for e in plan.endpoints
        ],
        "operator_env": list(plan.operator_env),
    }
