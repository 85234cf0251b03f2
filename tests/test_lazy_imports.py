"""`render` imports only what it uses: no Docker SDK, no rich, no Pydantic plugin scan, no Kubernetes models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
from albert_deploy.cli import cli
try:
    cli([*sys.argv[1:]], standalone_mode=False)
finally:
    print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""
NEVER_FOR_RENDER = ("docker", "rich", "importlib.metadata", "albert_deploy.profile.kubernetes", "dotenv")


def _modules(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_render_twice_imports_neither_docker_nor_rich_nor_the_plugin_scan(tmp_path: Path) -> None:
    out = str(tmp_path / "deploy")
    _modules("render", "-o", out)
    loaded = _modules("render", "-o", out)  # the second reads the .env the first wrote
    assert not {m for m in loaded if m.split(".")[0] in NEVER_FOR_RENDER or m in NEVER_FOR_RENDER}


def test_the_kubernetes_target_still_validates_its_settings(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("models:\n  - model: intfloat/multilingual-e5-large\nkubernetes:\n  namespace: Bad_Name\n")
    done = subprocess.run(
        [sys.executable, "-m", "albert_deploy", "render", str(profile), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "kubernetes.namespace: 'Bad_Name' is not a Kubernetes namespace" in done.stderr
