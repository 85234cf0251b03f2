"""An in-memory stand-in for the part of docker-py's low-level API that airgap/ uses.

Images, volumes (each a tar of its root) and one-off containers live in dicts. A container "runs"
by calling ``run(container) -> (exit code, log)``, which a test sets; by default the downloader
writes a snapshot into its volume and the cache check finds it. No daemon, no network.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import tarfile
from collections.abc import Callable, Iterator
from typing import Any

import docker.errors


def volume_tar(files: dict[str, bytes]) -> bytes:
    """A tar of a volume's root, as ``docker cp VOLUME/.`` streams it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _Response:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def iter_content(self, size: int) -> Iterator[bytes]:
        for start in range(0, len(self.data), size):
            yield self.data[start : start + size]


class FakeApi:
    def __init__(self) -> None:
        self.images: dict[str, dict[str, Any]] = {}  # ref or id -> {"Id", "RepoTags"}
        self.volume_data: dict[str, bytes] = {}  # volume name -> tar of its root
        self.volume_labels: dict[str, dict[str, str]] = {}
        self.containers: dict[str, dict[str, Any]] = {}
        self.removed: list[str] = []
        self.tags: list[tuple[str, str, str]] = []
        self.loaded: list[bytes] = []
        self.load_events: list[dict[str, Any]] = [{"stream": "Loaded image"}]
        self.save_error: docker.errors.APIError | None = None
        self.start_error: docker.errors.APIError | None = None
        self.served: dict[str, bytes] = {}  # URL -> body, for the release-asset download script
        self.run: Callable[[dict[str, Any]], tuple[int, str]] = self._default_run
        self._ids = itertools.count(1)
        self.pullable: set[str] = set()  # references a pull finds in the "registry"
        self.pulls: list[str] = []  # every pull asked for, in order
        self.on_pull: Callable[[str], None] = lambda ref: None  # runs inside each pull (a test's delay)

    # --- images ---
    def add_image(self, ref: str, image_id: str, tags: list[str] | None = None) -> None:
        entry = {"Id": image_id, "RepoTags": tags if tags is not None else [ref]}
        self.images[ref] = self.images[image_id] = entry

    def inspect_image(self, ref: str) -> dict[str, Any]:
        if ref not in self.images:
            raise docker.errors.ImageNotFound(f"No such image: {ref}")
        return self.images[ref]

    def pull(self, repository: str, tag: str | None = None, **_: Any) -> Iterator[dict[str, Any]]:
        ref = f"{repository}:{tag or 'latest'}"
        self.pulls.append(ref)
        self.on_pull(ref)
        if ref not in self.pullable:
            yield {"error": f"pull access denied for {repository}"}
            return
        yield {"id": "layer", "progressDetail": {"current": 1, "total": 1}}
        self.add_image(ref, "sha256:" + hashlib.sha256(ref.encode()).hexdigest())

    def _url(self, path: str) -> str:
        return path

    def _get(self, url: str, params: dict[str, Any], stream: bool) -> _Response:
        if self.save_error is not None:
            raise self.save_error
        return _Response(("saved:" + ",".join(params["names"])).encode() * 1000)

    def _raise_for_status(self, response: _Response) -> None:
        pass

    def load_image(self, stream: Any) -> Iterator[dict[str, Any]]:
        self.loaded.append(stream.read())
        yield from self.load_events

    def tag(self, image: str, repository: str, tag: str | None = None) -> bool:
        self.tags.append((image, repository, tag or ""))
        return True

    # --- volumes ---
    def volumes(self, filters: dict[str, str] | None = None) -> dict[str, Any]:
        names = sorted(self.volume_data)
        if filters and "name" in filters:
            names = [n for n in names if n == filters["name"]]
        return {"Volumes": [{"Name": n} for n in names] or None}

    def create_volume(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        self.volume_data.setdefault(name, volume_tar({}))
        self.volume_labels[name] = dict(labels or {})
        return {"Name": name}

    # --- containers ---
    def create_host_config(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def create_container(self, image: str, **kwargs: Any) -> dict[str, str]:
        container_id = f"c{next(self._ids)}"
        self.containers[container_id] = {"image": image, **kwargs}
        return {"Id": container_id}

    def start(self, container: str) -> None:
        if self.start_error is not None:
            raise self.start_error
        self.containers[container]["result"] = self.run(self.containers[container])

    def wait(self, container: str) -> dict[str, int]:
        return {"StatusCode": self.containers[container]["result"][0]}

    def logs(self, container: str) -> bytes:
        return str(self.containers[container]["result"][1]).encode()

    def remove_container(self, container: str, force: bool = False) -> None:
        self.removed.append(container)

    def get_archive(self, container: str, path: str) -> tuple[Iterator[bytes], dict[str, Any]]:
        volume = self._volume_of(self.containers[container])
        return iter([self.volume_data[volume]]), {}

    def put_archive(self, container: str, path: str, data: Any) -> bool:
        self.volume_data[self._volume_of(self.containers[container])] = data.read()
        return True

    @staticmethod
    def _volume_of(container: dict[str, Any]) -> str:
        return str(container["host_config"]["mounts"][0]["Source"])

    def _default_run(self, container: dict[str, Any]) -> tuple[int, str]:
        if "snapshot_download" in " ".join(container.get("entrypoint") or []):
            repo = container["command"][0]
            self.volume_data[self._volume_of(container)] = volume_tar({"snapshots/x/config.json": repo.encode()})
            return 0, f"downloaded {repo}"
        script = " ".join(container.get("entrypoint") or [])
        if "urllib.request" in script:  # a release asset's download: argv = URL, file, sha256, uid
            return self._download_asset(container)
        if "hashlib.sha256(open" in script:  # a release asset's check: argv = file, sha256
            path, expected = container["command"]
            raw = io.BytesIO(self.volume_data.get(self._volume_of(container), b""))
            with tarfile.open(fileobj=raw, mode="r:") as tar:
                stored = {m.name: tar.extractfile(m) for m in tar.getmembers() if m.isfile()}
                data = stored.get(path.rsplit("/", 1)[1])
                found = data is not None and hashlib.sha256(data.read()).hexdigest() == expected
            return (0 if found else 1), ""
        if container.get("entrypoint", [""])[0] == "sh":  # the cache check
            return (0 if b"snapshots" in self.volume_data.get(self._volume_of(container), b"") else 1), ""
        return 0, ""

    def _download_asset(self, container: dict[str, Any]) -> tuple[int, str]:
        url, path, expected, _ = container["command"]
        if url not in self.served:
            return 1, "urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name resolution>"
        got = hashlib.sha256(self.served[url]).hexdigest()
        if got != expected:
            return 3, f"refused: sha256 {got} is not the expected {expected}"
        self.volume_data[self._volume_of(container)] = volume_tar({path.rsplit("/", 1)[1]: self.served[url]})
        return 0, f"downloaded {url} into {path}"


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeApi()


# The real tiktoken file cannot be fetched in tests: the asset keeps its URL and file name, with the
# sha256 of this body, which the fake serves at that URL.
TIKTOKEN_BODY = b"bzw= 0\nISA= 1\n"


def tiktoken_test_asset() -> Any:
    from dataclasses import replace

    from albert_deploy.plan.assets import TIKTOKEN_O200K

    return replace(TIKTOKEN_O200K, sha256=hashlib.sha256(TIKTOKEN_BODY).hexdigest())


def serving_tiktoken(fake: FakeClient, monkeypatch: Any) -> None:
    """Make 0.2.0 plans use the test asset, which ``fake`` serves at its URL."""
    from albert_deploy.plan.releases import r0_2_0

    asset = tiktoken_test_asset()
    fake.api.served[asset.url] = TIKTOKEN_BODY
    monkeypatch.setattr(r0_2_0, "ASSETS", (asset,))


def connected_fake(monkeypatch: Any) -> FakeClient:
    """A fake that ``engine.connect`` returns, serving the test tiktoken asset."""
    from albert_deploy.converge import engine

    fake = FakeClient()
    serving_tiktoken(fake, monkeypatch)
    monkeypatch.setattr(engine, "connect", lambda: fake)
    return fake
