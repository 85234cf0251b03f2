"""The labels `up` finds and compares containers by: Docker Compose's own. Without Docker imports, so
that the no-change check of ``up`` (``fastpath``) reads them without loading the Docker SDK."""

from __future__ import annotations

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
ONEOFF = "com.docker.compose.oneoff"
CONFIG_HASH = "com.docker.compose.config-hash"
