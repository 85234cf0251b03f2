"""Text views of the commands' results: what `albert-deploy` prints without --json.

Each function takes the JSON-ready dict a ``commands`` function returns and gives the text for a
terminal. Pure formatting, no imports beyond the standard library and ``sizes``: ``cli`` imports it at start-up.
"""

from __future__ import annotations

from typing import Any

from albert_deploy.sizes import Size


def validate_text(result: dict[str, Any]) -> str:
    return f"{result['profile']}: valid ({len(result['models'])} models, Albert API {result['release']})"


def placement_text(result: dict[str, Any]) -> str:
    return str(result["text"])


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def steps_text(steps: list[list[str]], arrow: str) -> str:
    """Start steps as text: servers of one step load together (``+``), steps follow ``arrow``."""
    return arrow.join(" + ".join(step) for step in steps)


def diff_text(result: dict[str, Any]) -> str:
    rows = [["SERVICE", "ACTION", "WHY"]] + [[a["service"], a["action"], a["reason"]] for a in result["actions"]]
    verdict = f"{result['changes']} change(s)" if result["changes"] else "nothing to do: the stack matches the profile"
    order = [f"  GPU {o['gpu']}: " + steps_text(o["steps"], " -> ") for o in result.get("start_order", [])]
    if order:
        order.insert(0, "Start order per GPU (each step once the previous one is healthy; GPUs in parallel):")
    return "\n".join([f"Project {result['project']}: {verdict}", *_table(rows), *order])


def up_text(result: dict[str, Any]) -> str:
    rows = [["SERVICE", "IMAGE", "GPUS", "URL", "HEALTH"]]
    rows += [[s["service"], s["image"], s["gpus"], s["url"], s["health"] or s["state"]] for s in result["services"]]
    how = "started (not waiting for health: --detach)" if result["detached"] else "is up"
    changes = f"{result['changes']} change(s)" if result["changes"] else "nothing changed"
    return "\n".join([*_table(rows), f"Project {result['project']} {how}: {changes} in {result['seconds']:.1f} s.",
                      f"Albert API: {result['api_url']}"])  # fmt: skip


def down_text(result: dict[str, Any]) -> str:
    if not result["containers"] and not result["networks"] and not result["volumes"]:
        return f"Project {result['project']}: nothing to remove."
    lines = [f"Project {result['project']}: removed {len(result['containers'])} container(s)"]
    lines += [f"  container {c}" for c in result["containers"]]
    lines += [f"  network {n}" for n in result["networks"]]
    lines += [f"  volume {v}" for v in result["volumes"]]
    if not result["volumes"]:
        lines.append("Volumes were kept (use --volumes to remove them).")
    return "\n".join(lines)


def status_text(result: dict[str, Any]) -> str:
    warning = [result["api_warning"]] if result.get("api_warning") else []
    if not result["services"]:
        return "\n".join([f"Project {result['project']}: no containers.", *warning])
    rows = [["SERVICE", "STATE", "HEALTH", "GPUS", "PORTS", "LOCK", "DRIFT"]]
    rows += [[s["service"], s["state"], s["health"] or "-", s["gpus"], ",".join(s["ports"]) or "-", s["lock"],
              s["drift"]] for s in result["services"]]  # fmt: skip
    lines = [f"Project {result['project']}", *_table(rows), *warning]
    if result["drift"]:
        lines.append("The stack differs from the profile: `albert-deploy diff` says what `up` would change.")
    if result.get("lock_mismatch"):
        lines.append("A container runs an image other than the lock file's: `albert-deploy up` recreates it.")
    if any(s["started_by"] == "docker compose" for s in result["services"]):
        lines.append("Containers started by docker compose carry compose's own config hash: "
                     "`albert-deploy up` recreates them once.")  # fmt: skip
    return "\n".join(lines + gpu_memory_lines(result.get("gpu_memory")))


def gpu_memory_lines(report: dict[str, Any] | None) -> list[str]:
    """Measured GPU memory per model beside its planned budget, or what could not be read."""
    if not report:
        return []
    if not report["measured"]:
        return [f"GPU memory: not measured ({report['note']})"]
    rows = [["MODEL", "GPUS", "PLANNED", "MEASURED", "NOTE"]]
    rows += [[m["model"], m["gpus"], Size(m["planned_bytes"]).gb(), "-" if m["measured_bytes"] is None
              else Size(m["measured_bytes"]).gb(), m["note"] or ""] for m in report["models"]]  # fmt: skip
    return ["GPU memory (dcgm-exporter, through Prometheus):", *_table(rows)]


def check_text(result: dict[str, Any]) -> str:
    rows = [["MODEL", "VIA", "RESULT", "DETAIL"]]
    rows += [[r["name"], r["via"], "ok" if r["ok"] else "FAILED", r["detail"]] for r in result["results"]]
    return "\n".join([*_table(rows), *result["notes"]])


def render_text(result: dict[str, Any]) -> str:
    lines = [f"Rendered {result['profile']} (Albert API {result['release']}) into {result['output']}/"]
    width = max(len(s["service"]) for s in result["services"])
    role_width = max(len(s["role"]) for s in result["services"])
    for s in result["services"]:
        lines.append(f"  {s['service']:<{width}}  {s['role']:<{role_width}}  gpus {s['gpus']:<6}  {s['image']}")
    if result["operator_env"]:
        lines.append("Set if needed, in the environment or in .env: " + ", ".join(result["operator_env"]))
    lines.append(f"Start it with: albert-deploy up, or docker compose -f {result['output']}/compose.yml up -d --wait")
    return "\n".join(lines)


def render_kubernetes_text(result: dict[str, Any]) -> str:
    lines = [f"Rendered {result['profile']} (Albert API {result['release']}) as Kubernetes manifests into "
             f"{result['output']}/ (namespace {result['namespace']})"]  # fmt: skip
    rows = [[w["service"], w["kind"], w["role"], f"gpus {w['gpus'] or '-'}", w["image"]] for w in result["workloads"]]
    lines += ["  " + row for row in _table(rows)]
    lines += [f"Kubernetes name of {old}: {new}" for old, new in result["renamed"].items()]
    out, ns = result["output"], result["namespace"]
    steps = []
    if result["data"]:
        steps.append(f"kubectl apply -k {out}/{result['data']}   # once: namespace and model caches, "
                     f"which `kubectl delete -k {out}/{result['app']}` keeps")  # fmt: skip
    steps.append(f"kubectl apply -f {out}/{result['secret']}   # generated secrets: keep this file out of git")
    needed, optional = result["operator_required"], result["operator_optional"]
    if needed or optional:
        keys = " ".join(f"--from-literal={k}=..." for k in needed + optional)
        what = ", ".join([*(f"{k} required" for k in needed), *(f"{k} optional" for k in optional)])
        steps.append(f"kubectl -n {ns} create secret generic {result['operator_secret']} {keys}   # yours: {what}")
    steps.append(f"kubectl apply -k {out}/{result['app']}   # the stack; commit this directory for GitOps")
    lines.append("Apply it, in this order:")
    lines += [f"  {n}. {step}" for n, step in enumerate(steps, 1)]
    return "\n".join(lines)


def pull_text(result: dict[str, Any]) -> str:
    lines = [f"Pulled {sum(1 for i in result['images'] if i.get('pulled', True))} image(s):"]
    lines += [f"  {i['image']}" + ("" if i.get("pulled", True) else " (already here)") for i in result["images"]]
    if result["models"]:
        lines.append(f"Downloaded {len(result['models'])} model(s) with {result['downloader']} "
                     f"(Hugging Face token {result['token']}):")  # fmt: skip
        lines += [f"  {m['model']} -> volume {m['volume']}" for m in result["models"]]
    lines += [f"Downloaded the {a['asset']} -> volume {a['volume']} (sha256 checked)" for a in result.get("assets", [])]
    return "\n".join(lines)


def lock_text(result: dict[str, Any]) -> str:
    lines = [f"Wrote {result['lock']}:"]
    for i in result["images"]:
        pinned = i["pinned"] or "not pinned: a local image with no registry digest (built or loaded here)"
        lines.append(f"  {i['image']} -> {pinned}")
    return "\n".join(lines)


def bundle_text(result: dict[str, Any]) -> str:
    return "\n".join([f"Wrote {result['bundle']} ({Size(result['size']).human()}, {result['seconds']} s): "
                      f"{len(result['images'])} image(s), {len(result['volumes'])} model cache(s)",
                      *(f"  {n}  {Size(m['size']).human()}  sha256 {m['sha256'][:16]}" for n, m in result["members"].items()),
                      "On the offline host: albert-deploy load FILE"])  # fmt: skip


def load_text(result: dict[str, Any]) -> str:
    return "\n".join([f"Verified and loaded {result['bundle']} in {result['seconds']} s:",
                      *(f"  image {i}" for i in result["images"]),
                      *(f"  tagged {t}" for t in result.get("tags", [])),
                      *(f"  not tagged {t}" for t in result.get("tags_not_restored", [])),
                      *(f"  volume {v}" for v in result["volumes"]),
                      f"  rendered files in {result['output']} ({result['files']})",
                      *(f"  profile {p}" for p in result["profile"]),
                      "Start it with: albert-deploy up " + (result["profile"][0] if result["profile"] else "")])  # fmt: skip


def backup_text(result: dict[str, Any]) -> str:
    return "\n".join([f"Wrote {result['backup']} ({Size(result['size']).human()}, {result['seconds']} s) from project "
                      f"{result['project']} (release {result['release']}, {result['vector_store']}):",
                      *(f"  {n}  {Size(m['size']).human()}  sha256 {m['sha256'][:16]}" for n, m in result["members"].items()),
                      f"  redis keyspace: {', '.join(result['redis_keys']) or 'empty'}",
                      "Restore with: albert-deploy restore FILE [PROFILE]"])  # fmt: skip


def restore_text(result: dict[str, Any]) -> str:
    return "\n".join([f"Verified and restored {result['backup']} (taken {result['created']}) into project "
                      f"{result['project']} in {result['seconds']} s:",
                      *(["  postgres: the dump, in one transaction"] if result["postgres"] else []),
                      *(["  postgres: the playground's database, in one transaction"] if result.get("playground") else []),
                      f"  qdrant: {len(result['collections'])} collection(s) {', '.join(result['collections'])}",
                      *(f"  qdrant: {c} was not in the backup and is left as it is" for c in result["collections_not_in_backup"]),
                      f"  redis keyspace now: {', '.join(result['redis_keys']) or 'empty'}",
                      *(f"  volume {v}" for v in result["volumes"]),
                      *(f"  note: {n}" for n in result["notes"])])  # fmt: skip
