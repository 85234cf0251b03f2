"""The playground: the Streamlit UI each Albert API release ships, with the settings that release reads.

Both releases publish it as ``ghcr.io/etalab-ia/albert-api/ui:<tag>`` beside the API's ``app:<tag>``
(0.0.3: .github/workflows/build_and_tag.yml:13-14, 50; 0.2.0: .github/workflows/build_and_deploy.yml:19-20, 58).

- 0.0.3 (ui/Dockerfile:1-12): no CMD, WORKDIR /home/albert, user 1100; the command is the release's
  own (compose.yml:20); the only setting is ``BASE_URL``, the API's root with /v1 (ui/config.py:3).
  No database.
- 0.2.0 (ui/Dockerfile:30-53): user 1100, CMD /startup.sh, which runs its migrations then Streamlit on
  port 8501 (scripts/startup_ui.sh:13, 21-27), with ``MAX_UPLOAD_SIZE`` (MB, :5) and
  ``STREAMLIT_CMD_ARGS`` (:6, e.g. --server.baseUrlPath=/playground). It reads the API's config file,
  /config.yml (ui/settings.py:96 relative to WORKDIR /, Dockerfile:44; compose.prod.yml:33-34),
  replacing ``${VAR}`` from its environment (settings.py:109-114), and needs there ``playground.api_url``
  (settings.py:65-71) and exactly one sql database with context ``playground`` (settings.py:79-85),
  its own postgres database (compose.yml:11, config.example.yml:49-52). Its sql databases default
  to that context (settings.py:49), so the API's must say ``context: api``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from albert_deploy.catalog import HttpGet, urlopen_get
from albert_deploy.plan import databases
from albert_deploy.plan.spec import Joined, Mount, Service
from albert_deploy.sizes import Size

PORT = 8501  # scripts/startup_ui.sh:22 (0.2.0); compose.yml:20 (0.0.3)
PLAYGROUND_DB = "playground"  # 0.2.0 compose.yml:11 (CREATE_DB=api,playground)
USER = "1100:1100"  # ui/Dockerfile (0.0.3: :3-5; 0.2.0: :30-31, 43)
MEMORY = Size(1 * 2**30)  # a default for one Streamlit process, not a measurement
# 0.0.3's command (compose.yml:20 at 0.0.3), less the flags albert-deploy sets itself.
STREAMLIT_0_0_3 = (
    "streamlit", "run", "ui/main.py", f"--server.port={PORT}", "--browser.gatherUsageStats", "false",
    "--theme.base=light", "--theme.primaryColor=#6a6af4",
)  # fmt: skip
# 0.2.0: create the playground's database when it is missing (sqlalchemy-utils 0.41.2 is one of the
# image's dependencies, pyproject.toml:16), then run the image's CMD (ui/Dockerfile:53).
CREATE_DB_THEN_START = (
    "import os; from urllib.parse import quote; "
    "from sqlalchemy_utils import create_database, database_exists; "
    "url = 'postgresql://postgres:' + quote(os.environ['POSTGRES_PASSWORD'], safe='') "
    f"+ '@postgres:5432/{PLAYGROUND_DB}'; "
    "database_exists(url) or create_database(url); "
    "os.execv('/startup.sh', ['/startup.sh'])"
)


@dataclass(frozen=True)
class PlaygroundRelease:
    image: str
    uses_config: bool  # reads the API's config file (0.2.0) or only its environment (0.0.3)
    uses_postgres: bool


RELEASES: dict[str, PlaygroundRelease] = {
    "0.0.3": PlaygroundRelease("ghcr.io/etalab-ia/albert-api/ui:0.0.3", uses_config=False, uses_postgres=False),
    "0.2.0": PlaygroundRelease("ghcr.io/etalab-ia/albert-api/ui:0.2.0", uses_config=True, uses_postgres=True),
}


def service(release: str, image: str, api_port: int, base_path: str | None, max_upload_mb: int | None) -> Service:
    """The playground's container; ``base_path``: where the front door serves it (None: at /)."""
    path_flag = (f"--server.baseUrlPath={base_path}",) if base_path else ()
    health = urlopen_get(HttpGet(PORT, f"{base_path or ''}/_stcore/health"), start_period_s=60)
    if release == "0.0.3":
        upload = (f"--server.maxUploadSize={max_upload_mb or 20}",)
        return Service(
            name="playground", role="playground", image=image, user=USER, mem_limit=MEMORY,
            command=(*STREAMLIT_0_0_3, *upload, *path_flag),
            environment={"BASE_URL": f"http://api:{api_port}/v1"},
            healthcheck=health, depends_on=("api",), container_port=PORT,
        )  # fmt: skip
    environment: dict[str, Any] = {"POSTGRES_PASSWORD": databases.POSTGRES_PASSWORD}
    if max_upload_mb:
        environment["MAX_UPLOAD_SIZE"] = str(max_upload_mb)
    if path_flag:
        environment["STREAMLIT_CMD_ARGS"] = path_flag[0]
    return Service(
        name="playground", role="playground", image=image, user=USER, mem_limit=MEMORY,
        command=("python", "-c", CREATE_DB_THEN_START),
        environment=environment,
        mounts=(Mount("./config.yml", "/config.yml", read_only=True),),
        healthcheck=health, depends_on=("postgres", "api"), container_port=PORT,
    )  # fmt: skip


def config_context(release: str, api_port: int) -> dict[str, Any]:
    """What the API config adds for the playground (0.2.0): its API URL and its database."""
    if not RELEASES[release].uses_config:
        return {}
    url = Joined(("postgresql://postgres:", databases.POSTGRES_PASSWORD, f"@postgres:5432/{PLAYGROUND_DB}"))
    return {"playground": {"api_url": f"http://api:{api_port}", "database_url": url}}


def check_config(data: dict[str, Any]) -> list[str]:
    """The playground's own rules (ui/settings.py:65-90 at 0.2.0) on the rendered config; problems found."""
    problems = []
    if not isinstance((data.get("playground") or {}).get("api_url"), str):
        problems.append("playground.api_url is missing")
    sql = [
        d
        for d in data.get("databases") or []
        if d.get("type") == "sql" and d.get("context", "playground") == "playground"
    ]
    if len(sql) != 1:
        problems.append(f"exactly one sql database with context playground is required, found {len(sql)}")
    elif not str((sql[0].get("args") or {}).get("url", "")).startswith(("postgresql", "sqlite")):
        problems.append("the playground's sql database needs a postgresql URL")
    return problems
