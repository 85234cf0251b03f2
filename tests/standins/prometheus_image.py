"""The test image of Prometheus: Debian's real ``prometheus`` (2.42) behind the official image's contract.

The official image (facts: "prometheus image") is busybox with /bin/prometheus as ENTRYPOINT, run as
nobody in WORKDIR /prometheus (a VOLUME owned by nobody), and has busybox's wget and sh, which the
rendered health check and start command use. This one has the same, with Debian's binary, which
links only libc (copied with it). Used by build.py (loaded by path, like build.py itself).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

HOST_PROMETHEUS = Path("/usr/bin/prometheus")  # Debian's prometheus package
HOST_PROMTOOL = Path("/usr/bin/promtool")
HOST_WEB = Path("/usr/share/prometheus/web")  # Debian's build reads its UI assets from here
NEEDED = (HOST_PROMETHEUS, HOST_PROMTOOL)
INSTALL = "apt-get install -y prometheus (scripts/setup-test-env.sh)"
CMD = (
    '["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", '
    '"--web.console.libraries=/usr/share/prometheus/console_libraries", '
    '"--web.console.templates=/usr/share/prometheus/consoles"]'
)


def spec(with_libraries: Callable[[list], list], host_tree: Callable[[Path], list]) -> dict:
    """The build.py spec of the image: root-owned files, nobody-owned ones, the Dockerfile's tail."""
    binaries = [
        ("file", "/bin/prometheus", HOST_PROMETHEUS.read_bytes(), 0o755),
        ("file", "/bin/promtool", HOST_PROMTOOL.read_bytes(), 0o755),
    ]
    return {
        "files": [
            *with_libraries(binaries),
            *(host_tree(HOST_WEB) if HOST_WEB.is_dir() else []),
            ("link", "/bin/wget", "busybox", 0o777),  # the official image's busybox has wget
            ("file", "/etc/prometheus/prometheus.yml", b"scrape_configs: []\n", 0o644),
        ],
        "owned": ("65534:65534", [("dir", "/prometheus", None, 0o755)]),
        "tail": (
            "USER 65534\nWORKDIR /prometheus\nEXPOSE 9090\nVOLUME /prometheus\n"
            f'ENTRYPOINT ["/bin/prometheus"]\nCMD {CMD}\n'
        ),
    }


def missing() -> list[str]:
    return [str(p) for p in NEEDED if not p.exists()]
