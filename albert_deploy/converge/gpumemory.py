"""`status`: each model's measured GPU memory beside its planned budget, read from Prometheus.

dcgm-exporter reports ``DCGM_FI_DEV_FB_USED`` (MiB) per GPU, labelled with its index (``gpu``)
and ``UUID``; the plan says which GPUs each model was given. A GPU shared by several models is
measured as a whole: the figure is the GPU's, and the row says so. What cannot be read is said,
never guessed."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

from albert_deploy.plan.build import Plan
from albert_deploy.plan.monitoring import GpuBudget
from albert_deploy.plan.spec import reachable_host

METRIC = "DCGM_FI_DEV_FB_USED"
MIB = 2**20


def prometheus_url(plan: Plan) -> str | None:
    if plan.monitoring is None:
        return None
    host, port = plan.monitoring.prometheus
    return f"http://{reachable_host(host)}:{port}"


def query(url: str, promql: str, timeout: float = 3.0) -> list[dict[str, Any]]:
    """An instant query's result vector; raises OSError or ValueError when it cannot be read."""
    address = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(address, timeout=timeout) as answer:  # loopback, or the bind the profile gives
        body = json.load(answer)
    if body.get("status") != "success":
        raise ValueError(f"{body.get('errorType')}: {body.get('error')}")
    return list(body["data"]["result"])


def report(plan: Plan, timeout: float = 3.0) -> dict[str, Any]:
    """``{"measured": bool, "note": str | None, "models": [...]}``: one row per hosted model on GPUs."""
    m = plan.monitoring
    if m is None:
        return _none("monitoring is off (add `monitoring:` to the profile)", [])
    budgets = [b for b in m.budgets if b.gpus or b.by_count]
    if m.dcgm is not None:
        return _none(m.dcgm, budgets)
    if not budgets:
        return _none("no model runs on a GPU", [])
    url = prometheus_url(plan) or ""
    try:
        series = query(url, METRIC, timeout)
    except (OSError, ValueError) as err:
        return _none(f"Prometheus at {url} did not answer ({_reason(err)})", budgets)
    if not series:
        return _none(
            f"Prometheus has no {METRIC} yet (is dcgm-exporter up? `albert-deploy logs dcgm-exporter`)", budgets
        )
    by_gpu = {}
    for s in series:
        labels, value = s["metric"], int(float(s["value"][1]) * MIB)
        for key in ("gpu", "UUID"):
            if key in labels:
                by_gpu[labels[key]] = value
    shared = _sharing(budgets)
    return {"measured": True, "note": None, "models": [_row(b, by_gpu, shared) for b in budgets]}


def _row(b: GpuBudget, by_gpu: dict[str, int], shared: dict[str, list[str]]) -> dict[str, Any]:
    row = _planned(b)
    if b.by_count:
        return {**row, "note": "GPUs requested by count: no GPU id to match a measurement with"}
    missing = [g for g in b.gpus if g not in by_gpu]
    if missing:
        return {**row, "note": f"no {METRIC} for GPU {','.join(missing)}"}
    others = sorted({o for g in b.gpus for o in shared[g] if o != b.model})
    note = f"whole GPU, shared with {', '.join(others)}" if others else None
    return {**row, "measured_bytes": sum(by_gpu[g] for g in b.gpus), "note": note}


def _sharing(budgets: list[GpuBudget]) -> dict[str, list[str]]:
    shared: dict[str, list[str]] = {}
    for b in budgets:
        for g in b.gpus:
            shared.setdefault(g, []).append(b.model)
    return shared


def _planned(b: GpuBudget) -> dict[str, Any]:
    return {"model": b.model, "gpus": ",".join(b.gpus) or "by count", "planned_bytes": b.planned_bytes,
            "measured_bytes": None, "note": None}  # fmt: skip


def _none(note: str, budgets: list[GpuBudget]) -> dict[str, Any]:
    return {"measured": False, "note": note, "models": [_planned(b) for b in budgets]}


def _reason(err: Exception) -> str:
    reason = getattr(err, "reason", None)
    return str(reason if reason is not None else err)
