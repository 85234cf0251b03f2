"""Stand-in for the playground UI image of Albert API 0.2.0 (ghcr.io/etalab-ia/albert-api/ui:0.2.0).

    playground_ui.py migrate                  what /startup.sh runs first (alembic upgrade head)
    playground_ui.py run MAIN [streamlit flags]  what `streamlit run` does: serve the page

It applies the settings the real UI reads (facts.py, "ui 0.2.0 ..."): /config.yml with ${VAR}
replaced from the environment, its auth, playground and databases sections, exactly one sql
database with context playground, which must accept a login (the migrations connect first); then it
serves a minimal Streamlit-like page at --server.baseUrlPath, and Streamlit's health route.
Standard library only.
"""

from __future__ import annotations

import html
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common
import pg_login
import yaml
from facts import UI_FACTS, value

NAME = "playground"


def settings() -> dict:
    path = os.environ.get("CONFIG_FILE") or str(value("ui 0.2.0 config file"))
    with open(path) as handle:
        text = handle.read()
    for match in set(re.findall(str(value("ui 0.2.0 variable pattern")), text)):
        text = text.replace(match, os.environ.get(match[2:-1]) or match)
    data = yaml.safe_load(text)
    missing = [k for k in value("ui 0.2.0 required sections") if k not in (data or {})]  # type: ignore[attr-defined]
    if missing:
        raise SystemExit(f"config: missing section(s) {missing}")
    context = value("ui 0.2.0 default database context")
    sql = [d for d in data["databases"] if d.get("type") == "sql" and d.get("context", context) == context]
    if len(sql) != value("ui 0.2.0 sql databases with context playground"):
        raise SystemExit(f"config: there must be exactly one sql database with context playground, got {len(sql)}")
    url = str(sql[0].get("args", {}).get("url", ""))
    if not url.startswith(value("ui 0.2.0 sql url prefixes")):  # type: ignore[arg-type]
        raise SystemExit(f"config: the playground's sql url must start with postgresql or sqlite, got {url[:20]}")
    if not isinstance(data["playground"].get("api_url", "http://localhost:8000"), str):
        raise SystemExit("config: playground.api_url must be text")
    return {"url": url.replace("+asyncpg", ""), "api_url": data["playground"].get("api_url")}


def page(api_url: str, base: str) -> bytes:
    title = html.escape(str(value("ui 0.2.0 page title")))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:0;display:flex}} nav{{width:300px;background:#f0f2f6;height:100vh;
padding:24px}} main{{padding:48px}} h1{{color:#6a6af4}} input{{display:block;margin:8px 0;padding:8px;width:320px}}
button{{background:#6a6af4;color:white;border:0;padding:10px 18px}}</style></head>
<body><nav><b>{title}</b><p>My account</p><p>Chat</p><p>Documents</p><p>Summarize</p><p>Transcription</p></nav>
<main><h1>{title}</h1><p>Test stand-in of the Albert API playground, served at {html.escape(base or "/")}.</p>
<p>API: {html.escape(api_url)}</p><form><input placeholder="User name"><input type="password"
placeholder="Password"><button type="button">Login</button></form></main></body></html>""".encode()


class UiHandler(common.Handler):
    standin_name = NAME

    def route(self, method: str, path: str) -> None:
        base, api_url = self.server.state  # type: ignore[attr-defined]
        if path == base + str(UI_FACTS["streamlit health path"].value) and method == "GET":
            return self.send_text(200, "ok")
        if method == "GET" and path in (base or "/", base + "/"):
            return self.send_raw(200, page(api_url, base), "text/html; charset=utf-8")
        self.send_text(404, "Not Found")


def main(argv: list[str]) -> None:
    common.exit_on_signals()
    found = settings()
    pg_login.login(found["url"], timeout=10)  # alembic connects first (facts: "ui 0.2.0 migrations first")
    if argv[:1] == ["migrate"]:
        common.log(NAME, "database reachable; migrations would run here")
        return
    flags = dict(a[2:].split("=", 1) for a in argv if a.startswith("--server.") and "=" in a)
    port = int(flags.get("server.port", 8501))
    base = "/" + flags.get("server.baseUrlPath", "").strip("/") if flags.get("server.baseUrlPath") else ""
    common.log(NAME, f"max upload {flags.get('server.maxUploadSize')} MB, base path {base or '/'}")
    common.serve(UiHandler, "0.0.0.0", port, NAME, state=(base, found["api_url"]))


if __name__ == "__main__":
    main(sys.argv[1:])
