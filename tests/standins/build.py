#!/usr/bin/env python3
"""Build the stand-in images that integration tests run instead of the real ones.

Test machines reach no container registry, so vllm/vllm-openai, TEI, whisper-openai-api, the
Albert API, redis-stack, postgres and qdrant cannot be pulled. Redis and postgres are the real
servers, copied from Debian's packages on the host (as Python is) behind the official images'
entrypoint contracts; the others are stand-ins. Each stand-in copies what the
outside world sees of its real image (entrypoint and flags, port, user, paths, and the tools its
health check needs: curl, redis-cli, pg_isready, bash with /dev/tcp, head, grep, python3) and
lacks what the real one lacks (no curl in qdrant, redis or the API; no python3 on PATH in TEI,
redis, postgres, qdrant): a health check that works here works there.

How: one base image made by ``docker import`` of a root file system holding the host's static
busybox (a curated set of applets, no network tools), its bash and its Python 3.11, the latter
off PATH at /opt/standin/bin so that only images whose real counterpart has python3 expose it;
then one small ``docker build`` per service (legacy builder, COPY only, no RUN). Every image is
labelled ``albert-deploy.test=1`` plus a digest of its inputs, so a second call is a few API
calls. Usage: ``python tests/standins/build.py [--clean]`` or ``build_all(docker_client)``.
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHIMS = HERE / "shims"
PREFIX = "albert-deploy-test"
BASE = f"{PREFIX}/base:1"
TEST_LABEL = "albert-deploy.test"
INPUTS_LABEL = "albert-deploy.test.inputs"
LOCK = Path(tempfile.gettempdir()) / "albert-deploy-standins.lock"

HOST_PYTHON = Path("/usr/bin/python3.11")  # Debian's python3.11-minimal
HOST_STDLIB = Path("/usr/lib/python3.11")
HOST_BASH = Path("/bin/bash")
HOST_BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static
# The real database servers, from Debian's packages, copied into images like Python is.
HOST_REDIS = Path("/usr/bin/redis-check-rdb")  # redis-tools: the multi-call binary, run as redis-server
HOST_REDIS_CLI = Path("/usr/bin/redis-cli")
HOST_NGINX = Path("/usr/sbin/nginx")  # Debian's nginx: the real balancer in front of a model's replicas
HOST_CADDY = Path("/usr/bin/caddy")  # Debian's caddy (2.6.2 in bookworm): the real front door of api.public
PG = Path("/usr/lib/postgresql/15")  # postgresql-15: bin/ and lib/ (extensions, encodings)
PG_SHARE = Path("/usr/share/postgresql/15")  # what initdb loads
PG_TOOLS = ("postgres", "initdb", "pg_ctl", "pg_isready", "psql", "pg_dump")  # pg_dump: `albert-deploy backup`
ZONEINFO = Path("/usr/share/zoneinfo")  # Debian builds postgres with the system's time zones
STDLIB_SKIP = {
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "pydoc_data",
    "config-3.11-x86_64-linux-gnu",
}
# What a Debian-slim image has from coreutils, grep, sed, procps: no wget, nc or other network tool.
APPLETS = [
    "sh",
    "ash",
    "[",
    "[[",
    "awk",
    "basename",
    "cat",
    "chmod",
    "chown",
    "cp",
    "cut",
    "date",
    "dd",
    "df",
    "dirname",
    "du",
    "echo",
    "env",
    "expr",
    "false",
    "find",
    "grep",
    "egrep",
    "fgrep",
    "gzip",
    "head",
    "hostname",
    "id",
    "kill",
    "ln",
    "ls",
    "mkdir",
    "mktemp",
    "mv",
    "nproc",
    "od",
    "printf",
    "ps",
    "pwd",
    "readlink",
    "realpath",
    "rm",
    "rmdir",
    "sed",
    "seq",
    "sleep",
    "sort",
    "stat",
    "tail",
    "tar",
    "tee",
    "test",
    "timeout",
    "touch",
    "tr",
    "true",
    "uname",
    "uniq",
    "wc",
    "which",
    "whoami",
    "xargs",
]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PY = "/opt/standin/bin/python3.11"
PASSWD = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"

Entry = tuple[str, str, object, int]  # (kind: file|dir|link, path, bytes or link target, mode)


# ---------------------------------------------------------------- base image
def _check_host() -> None:
    # http/server.py and wave.py come with libpython3.11-stdlib, not with python3.11-minimal.
    needed = (HOST_PYTHON, HOST_STDLIB / "http" / "server.py", HOST_STDLIB / "wave.py", HOST_BASH, HOST_BUSYBOX)
    needed += (
        HOST_NGINX,
        HOST_CADDY,
        HOST_REDIS,
        HOST_REDIS_CLI,
        PG_SHARE / "postgres.bki",
        *(PG / "bin" / t for t in PG_TOOLS),
    )
    missing = [str(p) for p in needed if not p.exists()] + _sibling("prometheus_image").missing()
    if missing:
        raise RuntimeError(
            f"cannot build the test images: missing {', '.join(missing)} (bash scripts/setup-test-env.sh, or "
            "apt-get install -y python3.11-minimal libpython3.11-stdlib busybox-static bash redis-tools postgresql-15 nginx caddy "
            "prometheus)"
        )


def _shared_libraries(binaries: list[Path]) -> set[str]:
    """Every library the loader would map for these binaries (paths as ldd prints them)."""
    out = subprocess.run(["ldd", *map(str, binaries)], capture_output=True, text=True).stdout
    libs = set()
    for line in out.splitlines():
        words = line.split()
        if "=>" in words and len(words) > 2 and words[2].startswith("/"):
            libs.add(words[2])
        elif words and words[0].startswith("/") and not words[0].endswith(":"):
            libs.add(words[0])  # the loader itself
    return libs


def _base_tar(path: Path) -> None:
    """The base root file system as a tar, owned by root."""

    def info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name.lstrip("/"))
        ti.type, ti.mode, ti.mtime = kind, mode, 0
        return ti

    with tarfile.open(path, "w") as tar:

        def add_file(src: Path, name: str) -> None:
            data = src.read_bytes()  # dereferences symlinks
            ti = info(name, tarfile.REGTYPE, src.stat().st_mode & 0o7777)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))

        def add_link(name: str, target: str) -> None:
            ti = info(name, tarfile.SYMTYPE, 0o777)
            ti.linkname = target
            tar.addfile(ti)

        done = set()
        for d in (
            "bin",
            "usr/bin",
            "usr/sbin",
            "sbin",
            "usr/local/bin",
            "usr/local/sbin",
            "etc",
            "proc",
            "sys",
            "dev",
            "root",
            "tmp",
            "opt/standin/bin",
            "opt/standin/lib",
            "opt/standin/lib/python3/dist-packages",
        ):
            for i in range(1, d.count("/") + 2):
                parent = "/".join(d.split("/")[:i])
                if parent not in done:
                    done.add(parent)
                    tar.addfile(info(parent, tarfile.DIRTYPE, {"tmp": 0o1777, "root": 0o700}.get(parent, 0o755)))
        add_file(HOST_BUSYBOX, "bin/busybox")
        for applet in APPLETS:
            add_link(f"bin/{applet}", "busybox")
        add_file(HOST_BASH, "bin/bash")
        add_link("usr/bin/bash", "/bin/bash")
        add_file(HOST_PYTHON, PY)
        add_link("opt/standin/bin/python3", "python3.11")
        dynload = sorted((HOST_STDLIB / "lib-dynload").glob("*.so"))
        for lib in sorted(_shared_libraries([HOST_PYTHON, HOST_BASH, *dynload])):
            add_file(Path(lib), lib)
        for root, dirs, files in os.walk(HOST_STDLIB):
            dirs[:] = sorted(d for d in dirs if not (Path(root) == HOST_STDLIB and d in STDLIB_SKIP))
            rel = "opt/standin/lib/python3.11/" + os.path.relpath(root, HOST_STDLIB)
            tar.addfile(info(os.path.normpath(rel), tarfile.DIRTYPE, 0o755))
            for name in sorted(files):
                src = Path(root, name)
                if src.exists():  # Debian's sitecustomize.py links to /etc: skip dangling links
                    add_file(src, f"{rel}/{name}")
        for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP), ("etc/nsswitch.conf", "hosts: files dns\n")):
            data = text.encode()
            ti = info(name, tarfile.REGTYPE, 0o644)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))


def _base_inputs() -> str:
    h = hashlib.sha256(inspect.getsource(_base_tar).encode())
    h.update(repr((APPLETS, sorted(STDLIB_SKIP), PASSWD, GROUP, PATH)).encode())
    for p in (HOST_PYTHON, HOST_BASH, HOST_BUSYBOX):
        h.update(p.read_bytes())
    return h.hexdigest()


def _build_base(client, digest: str) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory(prefix="albert-deploy-base-") as tmp:
        tar_path = Path(tmp, "rootfs.tar")
        _base_tar(tar_path)
        repo, tag = BASE.rsplit(":", 1)
        changes = [f"ENV PATH={PATH}", f"LABEL {TEST_LABEL}=1", f"LABEL {INPUTS_LABEL}={digest}"]
        client.api.import_image_from_file(str(tar_path), repository=repo, tag=tag, changes=changes)


# ---------------------------------------------------------------- service images
def _src(name: str) -> bytes:
    return (HERE / name).read_bytes()


def _shim(name: str) -> bytes:
    return (SHIMS / name).read_bytes()


def _yaml_package() -> list[Entry]:
    """PyYAML's pure-Python files for the API stand-in (the real API reads its config with PyYAML)."""
    import yaml  # a dependency of albert-deploy itself

    pkg = Path(yaml.__file__).parent
    return [("file", f"/opt/standin/py/yaml/{p.name}", p.read_bytes(), 0o644) for p in sorted(pkg.glob("*.py"))]


def _users(*extra: str) -> list[Entry]:
    lines = [line.split(":") for line in extra]
    passwd = PASSWD + "".join(f"{n}:x:{u}:{u}::{home}:/bin/bash\n" for n, u, home in lines)
    group = GROUP + "".join(f"{n}:x:{u}:\n" for n, u, _ in lines)
    return [("file", "/etc/passwd", passwd.encode(), 0o644), ("file", "/etc/group", group.encode(), 0o644)]


def _python_on_path(where: str = "/usr/bin") -> list[Entry]:
    return [("link", f"{where}/python3", PY, 0o777), ("link", f"{where}/python", PY, 0o777)]


def _server(module: str) -> list[Entry]:
    return [
        ("file", "/opt/standin/py/common.py", _src("common.py"), 0o644),
        ("file", f"/opt/standin/py/{module}", _src(module), 0o644),
        ("file", "/opt/standin/py/facts.py", _src("facts.py"), 0o644),  # the rules each stand-in applies
    ]


def _host_tree(root: Path, skip: tuple[str, ...] = ()) -> list[Entry]:
    """Every file under ``root`` at the same path in the image (links dereferenced)."""
    found: list[Entry] = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not any(part in skip for part in path.relative_to(root).parts):
            found.append(("file", str(path), path.read_bytes(), path.stat().st_mode & 0o755))
    return found


def _with_libraries(entries: list[Entry]) -> list[Entry]:
    """The entries plus every shared library their binaries and modules load, from the host."""
    binaries = [Path(p) for kind, p, _, mode in entries if kind == "file" and (mode & 0o111 or p.endswith(".so"))]
    have = {e[1] for e in entries}
    libs = sorted(lib for lib in _shared_libraries(binaries) if lib not in have)
    return [*entries, *(("file", lib, Path(lib).read_bytes(), 0o755) for lib in libs)]


def _redis_server() -> list[Entry]:
    return _with_libraries(
        [
            ("file", "/usr/bin/redis-server", HOST_REDIS.read_bytes(), 0o755),
            ("file", "/usr/bin/redis-cli", HOST_REDIS_CLI.read_bytes(), 0o755),
        ]
    )


def _postgres_server() -> list[Entry]:
    tools = [("file", str(PG / "bin" / t), (PG / "bin" / t).read_bytes(), 0o755) for t in PG_TOOLS]
    # No JIT: llvmjit needs LLVM (100 MB) and is off unless asked for.
    modules = [e for e in _host_tree(PG / "lib", skip=("bitcode",)) if not e[1].endswith(("llvmjit.so", ".bc"))]
    return [*_with_libraries([*tools, *modules]), *_host_tree(PG_SHARE), *_host_tree(ZONEINFO)]


def _sibling(name: str):  # type: ignore[no-untyped-def]
    """A module beside this file, loaded by path (this file is also loaded by path and as a script)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"albert_deploy_standins_{name}", HERE / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _curl() -> list[Entry]:
    return [("file", "/usr/bin/curl", _shim("curl"), 0o755)]


def _specs() -> dict[str, dict]:
    """Per image: root-owned files, files owned by the image's user, and the Dockerfile's tail."""
    vllm_pkg = "/opt/standin/lib/python3/dist-packages/vllm"
    return {
        "vllm": {
            "files": [
                *_server("model_server.py"),
                *_curl(),
                *_python_on_path(),
                ("link", "/usr/bin/wget", "/bin/busybox", 0o777),  # the real image has wget
                ("file", "/usr/local/bin/vllm", _shim("vllm"), 0o755),
                ("file", f"{vllm_pkg}/__init__.py", b"", 0o644),
                ("file", f"{vllm_pkg}/entrypoints/__init__.py", b"", 0o644),
                ("file", f"{vllm_pkg}/entrypoints/openai/__init__.py", b"", 0o644),
                ("file", f"{vllm_pkg}/entrypoints/openai/api_server.py", _shim("vllm_api_server.py"), 0o644),
                ("dir", "/root/.cache/huggingface", None, 0o755),
                ("dir", "/vllm-workspace", None, 0o755),
            ],
            "tail": 'WORKDIR /vllm-workspace\nEXPOSE 8000\nENTRYPOINT ["vllm", "serve"]\n',
        },
        "tei": {
            "files": [
                *_server("model_server.py"),
                *_curl(),
                ("file", "/usr/local/bin/text-embeddings-router", _shim("text-embeddings-router"), 0o755),
                ("dir", "/data", None, 0o755),
            ],
            "tail": (
                "ENV HUGGINGFACE_HUB_CACHE=/data PORT=80\nEXPOSE 80\n"
                'ENTRYPOINT ["text-embeddings-router"]\nCMD ["--json-output"]\n'
            ),
        },
        "whisper": {
            "files": [*_server("model_server.py"), *_curl(), *_python_on_path(), *_users("whisper:1100:/home/whisper")],
            "owned": (
                "1100:1100",
                [
                    ("file", "/home/whisper/app/main.py", _shim("whisper_main.py"), 0o644),
                    ("file", "/home/whisper/app/__init__.py", b"", 0o644),
                    # No /home/whisper/.cache, as upstream: a volume mounted there is created root's.
                ],
            ),
            # No CMD, like the real image: compose must give `python3 app/main.py ...`.
            "tail": f"ENV PYTHONUNBUFFERED=1 PATH=/home/whisper/.local/bin:{PATH}\nUSER 1100\nWORKDIR /home/whisper\n",
        },
        "albert-api": {
            "files": [
                *_server("albert_api.py"),
                ("file", "/opt/standin/py/api_config.py", _src("api_config.py"), 0o644),
                ("file", "/opt/standin/py/pg_login.py", _src("pg_login.py"), 0o644),
                *_yaml_package(),
                *_python_on_path("/usr/local/bin"),
                *_users("albert:1100:/home/albert"),
                ("file", "/usr/local/bin/uvicorn", _shim("uvicorn"), 0o755),
            ],
            "owned": (
                "1100:1100",
                [("file", "/startup.sh", _shim("startup.sh"), 0o744), ("dir", "/home/albert", None, 0o755)],
            ),
            # WORKDIR is 0.0.3's (0.2.0's is /; its startup.sh reads /config.yml by absolute path).
            "tail": 'USER 1100\nWORKDIR /home/albert\nCMD ["/startup.sh"]\n',
        },
        "nginx": {
            # Debian's real nginx, in the place of the official image's (which albert-deploy pins for a
            # model's replicas): busybox sh, tr and test as in its alpine tags; STOPSIGNAL as upstream.
            "files": _with_libraries([("file", "/usr/sbin/nginx", HOST_NGINX.read_bytes(), 0o755)]),
            "tail": 'EXPOSE 80\nSTOPSIGNAL SIGQUIT\nCMD ["nginx", "-g", "daemon off;"]\n',
        },
        "caddy": {
            # Debian's real caddy behind the official image's contract (caddyserver/caddy-docker
            # 2.11/alpine/Dockerfile: curl inside :3-7, XDG dirs :43-44, ports :55-58, WORKDIR /srv :60).
            "files": [
                *_with_libraries([("file", "/usr/bin/caddy", HOST_CADDY.read_bytes(), 0o755)]),
                *_curl(),
                *(("dir", d, None, 0o755) for d in ("/config/caddy", "/data/caddy", "/etc/caddy", "/srv")),
            ],
            "tail": (
                "ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data\nEXPOSE 80 443 2019\nWORKDIR /srv\n"
                'CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]\n'
            ),
        },
        "playground": {
            # The playground UI of Albert API 0.2.0 (ui/Dockerfile:28-53): user 1100, /startup.sh,
            # python on PATH from /.venv/bin, sqlalchemy-utils importable; the page is a stand-in.
            "files": [
                *_server("playground_ui.py"),
                ("file", "/opt/standin/py/pg_login.py", _src("pg_login.py"), 0o644),
                *_yaml_package(),
                *_python_on_path("/.venv/bin"),
                *_users("albert:1100:/ui"),
                ("file", "/usr/local/bin/streamlit", _shim("streamlit"), 0o755),
                (
                    "file",
                    "/opt/standin/lib/python3/dist-packages/sqlalchemy_utils.py",
                    _shim("sqlalchemy_utils.py"),
                    0o644,
                ),
            ],
            "owned": (
                "1100:1100",
                [("file", "/startup.sh", _shim("playground-startup.sh"), 0o744), ("file", "/ui/main.py", b"", 0o644)],
            ),
            "tail": f'ENV PATH=/.venv/bin:{PATH} PYTHONPATH=/ui\nUSER 1100\nWORKDIR /\nCMD ["/startup.sh"]\n',
        },
        "redis": {
            # Debian's real redis 7.0 behind redis-stack-server's entrypoint contract.
            "files": [
                *_redis_server(),
                ("file", "/entrypoint.sh", _shim("redis-entrypoint.sh"), 0o755),
                ("dir", "/data", None, 0o755),
            ],
            "tail": 'WORKDIR /data\nEXPOSE 6379\nCMD ["/entrypoint.sh"]\n',
        },
        "postgres": {
            # Debian's real postgresql-15 behind postgres:16's entrypoint contract.
            "files": [
                *_postgres_server(),
                *_users("postgres:999:/var/lib/postgresql"),
                ("file", "/usr/local/bin/docker-entrypoint.sh", _shim("postgres-entrypoint.sh"), 0o755),
            ],
            "owned": (
                "999:999",
                [("dir", "/var/lib/postgresql/data", None, 0o700), ("dir", "/var/run/postgresql", None, 0o2777)],
            ),
            "tail": (
                f"ENV PATH={PATH}:{PG}/bin PGDATA=/var/lib/postgresql/data TZ=Etc/UTC\n"
                "VOLUME /var/lib/postgresql/data\nSTOPSIGNAL SIGINT\nEXPOSE 5432\n"
                'ENTRYPOINT ["docker-entrypoint.sh"]\nCMD ["postgres"]\n'
            ),
        },
        # Debian's real Prometheus behind the official image's contract (prometheus_image.py).
        "prometheus": _sibling("prometheus_image").spec(_with_libraries, _host_tree),
        "qdrant": {
            # As the -unprivileged tags the renderer pins: uid 1000, /qdrant owned by it.
            "files": [*_server("qdrant_server.py"), *_users("qdrant:1000:/qdrant")],
            "owned": (
                "1000:1000",
                [
                    ("file", "/qdrant/entrypoint.sh", _shim("qdrant-entrypoint.sh"), 0o755),
                    ("dir", "/qdrant/storage", None, 0o755),
                    ("dir", "/qdrant/snapshots", None, 0o755),
                ],
            ),
            "tail": 'USER 1000\nWORKDIR /qdrant\nEXPOSE 6333 6334\nCMD ["./entrypoint.sh"]\n',
        },
    }


def _context(spec: dict) -> bytes:
    """The build context tar: a Dockerfile and files under root/ and owned/, copied over the base."""
    dockerfile = f"FROM {BASE}\nCOPY root/ /\n"
    groups = [("root", spec["files"])]
    if "owned" in spec:
        owner, entries = spec["owned"]
        dockerfile += f"COPY --chown={owner} owned/ /\n"
        groups.append(("owned", entries))
    dockerfile += spec["tail"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for top, entries in groups:
            for kind, path, payload, mode in sorted(entries, key=lambda e: e[1]):
                ti = tarfile.TarInfo(f"{top}{path}")
                ti.mode, ti.mtime = mode, 0
                if kind == "file":
                    ti.size = len(payload)  # type: ignore[arg-type]
                    tar.addfile(ti, io.BytesIO(payload))  # type: ignore[arg-type]
                elif kind == "dir":
                    ti.type = tarfile.DIRTYPE
                    tar.addfile(ti)
                else:
                    ti.type, ti.linkname = tarfile.SYMTYPE, str(payload)
                    tar.addfile(ti)
        data = dockerfile.encode()
        ti = tarfile.TarInfo("Dockerfile")
        ti.size, ti.mtime = len(data), 0
        tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


# ---------------------------------------------------------------- entry points
def _current(client, tag: str):  # type: ignore[no-untyped-def]
    import docker.errors

    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def _drop_if_dangling(client, old) -> None:  # type: ignore[no-untyped-def]
    """A rebuilt tag leaves the previous image untagged: remove it, unless something still uses it."""
    import docker.errors

    if old is None:
        return
    try:
        if not client.images.get(old.id).tags:
            client.images.remove(old.id)
    except docker.errors.APIError:
        pass


def build_all(client, log: Callable[[str], None] | None = None) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Build (or reuse) every stand-in image; returns logical name -> tag (vllm, tei, whisper,
    albert-api, redis, postgres, qdrant). Safe to call from several processes at once."""
    say = log or (lambda _msg: None)
    _check_host()
    LOCK.touch(exist_ok=True)
    with open(LOCK) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pytest sessions must not build the same tag at once
        started = time.monotonic()
        digest = _base_inputs()
        old = _current(client, BASE)
        if old is None or old.labels.get(INPUTS_LABEL) != digest:
            _build_base(client, digest)
            _drop_if_dangling(client, old)
            say(f"built {BASE} in {time.monotonic() - started:.1f} s")
        base_id = client.images.get(BASE).id
        tags = {}
        for name, spec in _specs().items():
            tag = f"{PREFIX}/{name}:1"
            context = _context(spec)
            inputs = hashlib.sha256(base_id.encode() + context).hexdigest()
            old = _current(client, tag)
            if old is None or old.labels.get(INPUTS_LABEL) != inputs:
                t0 = time.monotonic()
                client.images.build(
                    fileobj=io.BytesIO(context),
                    custom_context=True,
                    tag=tag,
                    rm=True,
                    forcerm=True,
                    labels={TEST_LABEL: "1", INPUTS_LABEL: inputs},
                    pull=False,
                )
                _drop_if_dangling(client, old)
                say(f"built {tag} in {time.monotonic() - t0:.1f} s")
            tags[name] = tag
        say(f"stand-in images ready in {time.monotonic() - started:.2f} s")
        return tags


def remove_all(client) -> None:  # type: ignore[no-untyped-def]
    """Remove every stand-in image (children first); used to measure a cold build."""
    images = client.images.list(filters={"label": f"{TEST_LABEL}=1"})
    for image in sorted(images, key=lambda i: BASE in i.tags):
        client.images.remove(image.id, force=True)


if __name__ == "__main__":
    import docker

    docker_client = docker.from_env()
    if "--clean" in sys.argv[1:]:
        remove_all(docker_client)
        print("removed the stand-in images")
    else:
        for logical, image_tag in build_all(docker_client, log=print).items():
            print(f"{logical:11} {image_tag}")
