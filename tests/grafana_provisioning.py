"""A checker for Grafana's provisioning files and dashboard JSON, from the format its documentation gives.

Grafana has no Debian package, so it cannot run here: the files `render` writes are held to the
documented format instead. Sources (Grafana 11.2, the image albert-deploy pins):
- grafana.com/docs/grafana/v11.2/administration/provisioning/ — "Data sources": a YAML file with
  ``apiVersion: 1``, optional ``deleteDatasources`` and ``prune``, and a ``datasources`` list whose
  entries need ``name`` and ``type`` and may set the keys in DATASOURCE_KEYS (``access``: proxy or
  direct); "Dashboards": ``apiVersion: 1`` and a ``providers`` list, each with ``name``, a
  ``type`` (file), ``options.path`` and the keys in PROVIDER_KEYS. Values may hold ``$VAR`` or
  ``${VAR}``, which Grafana replaces: a provisioned value must hold no ``$``.
- grafana.com/docs/grafana/v11.2/dashboards/build-dashboards/view-dashboard-json-model/ — the
  dashboard's top-level keys (DASHBOARD_KEYS), ``uid`` of at most 40 characters, panels with an
  ``id``, ``type``, ``title`` and a ``gridPos`` (x, y, w, h) on a 24-column grid, and queries
  (``targets``) with a ``refId`` unique in their panel.
Each function returns the problems it found (empty: valid).
"""

from __future__ import annotations

from typing import Any

DATASOURCE_KEYS = {
    "name", "type", "access", "orgId", "uid", "url", "user", "database", "basicAuth", "basicAuthUser",
    "withCredentials", "isDefault", "jsonData", "secureJsonData", "version", "editable",
}  # fmt: skip
PROVIDER_KEYS = {
    "name", "orgId", "folder", "folderUid", "type", "disableDeletion", "updateIntervalSeconds", "allowUiUpdates",
    "options",
}  # fmt: skip
PROVIDER_OPTIONS = {"path", "foldersFromFilesStructure"}
DASHBOARD_KEYS = {
    "id", "uid", "title", "description", "tags", "style", "timezone", "editable", "graphTooltip", "hideControls",
    "panels", "time", "timepicker", "templating", "annotations", "refresh", "schemaVersion", "version", "links",
    "fiscalYearStartMonth", "liveNow", "weekStart",
}  # fmt: skip
PANEL_TYPES = {"timeseries", "stat", "gauge", "table", "text", "bargauge", "row"}


def _dollars(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [f"{where}: '$' would be replaced by Grafana"] if "$" in value else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _dollars(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _dollars(v, f"{where}.{i}")]
    return []


def datasources(data: Any) -> list[str]:
    if not isinstance(data, dict) or data.get("apiVersion") != 1:
        return ["apiVersion must be 1"]
    problems = [
        f"unknown top-level key {k}"
        for k in data
        if k not in ("apiVersion", "datasources", "deleteDatasources", "prune")
    ]
    entries = data.get("datasources")
    if not isinstance(entries, list) or not entries:
        return [*problems, "datasources must be a non-empty list"]
    for i, ds in enumerate(entries):
        problems += [f"datasources.{i}: {k} is required" for k in ("name", "type") if not ds.get(k)]
        problems += [f"datasources.{i}: unknown key {k}" for k in ds if k not in DATASOURCE_KEYS]
        if ds.get("access", "proxy") not in ("proxy", "direct"):
            problems.append(f"datasources.{i}: access must be proxy or direct")
    if sum(bool(ds.get("isDefault")) for ds in entries) > 1:
        problems.append("only one data source may be the default")
    return problems + _dollars(data, "datasources")


def providers(data: Any) -> list[str]:
    if not isinstance(data, dict) or data.get("apiVersion") != 1:
        return ["apiVersion must be 1"]
    entries = data.get("providers")
    if not isinstance(entries, list) or not entries:
        return ["providers must be a non-empty list"]
    problems = []
    for i, p in enumerate(entries):
        problems += [f"providers.{i}: unknown key {k}" for k in p if k not in PROVIDER_KEYS]
        if not p.get("name"):
            problems.append(f"providers.{i}: name is required")
        if p.get("type", "file") != "file":
            problems.append(f"providers.{i}: type must be file")
        options = p.get("options") or {}
        if not str(options.get("path", "")).startswith("/"):
            problems.append(f"providers.{i}: options.path must be an absolute directory")
        problems += [f"providers.{i}.options: unknown key {k}" for k in options if k not in PROVIDER_OPTIONS]
    return problems + _dollars(data, "providers")


def dashboard(data: Any, datasource_uids: set[str]) -> list[str]:
    if not isinstance(data, dict):
        return ["a dashboard is a JSON object"]
    problems = [f"unknown key {k}" for k in data if k not in DASHBOARD_KEYS]
    if not data.get("title"):
        problems.append("title is required")
    if not isinstance(data.get("uid"), str) or not 0 < len(data["uid"]) <= 40:
        problems.append("uid must be a string of 1 to 40 characters")
    if not isinstance(data.get("schemaVersion"), int):
        problems.append("schemaVersion must be an integer")
    panels = data.get("panels")
    if not isinstance(panels, list) or not panels:
        return [*problems, "panels must be a non-empty list"]
    ids = [p.get("id") for p in panels]
    if len(set(ids)) != len(ids) or not all(isinstance(i, int) for i in ids):
        problems.append(f"panel ids must be unique integers: {ids}")
    for p in panels:
        problems += _panel(p, datasource_uids)
    return problems


def _panel(p: dict[str, Any], datasource_uids: set[str]) -> list[str]:
    where = f"panel {p.get('id')} ({p.get('title')})"
    problems = [f"{where}: {k} is required" for k in ("type", "title", "gridPos") if not p.get(k)]
    if p.get("type") not in PANEL_TYPES:
        problems.append(f"{where}: unknown panel type {p.get('type')}")
    grid = p.get("gridPos") or {}
    if not all(isinstance(grid.get(k), int) for k in "xywh") or not (grid["w"] >= 1 and grid["x"] + grid["w"] <= 24):
        problems.append(f"{where}: gridPos needs integer x, y, w, h within 24 columns")
    targets = p.get("targets", [])
    refs = [t.get("refId") for t in targets]
    if len(set(refs)) != len(refs) or not all(refs):
        problems.append(f"{where}: every query needs a refId unique in its panel")
    for t in targets:
        if not t.get("expr"):
            problems.append(f"{where}: query {t.get('refId')} has no expr")
        uid = (t.get("datasource") or p.get("datasource") or {}).get("uid")
        if uid not in datasource_uids:
            problems.append(f"{where}: query {t.get('refId')} names data source {uid}, which is not provisioned")
    return problems
