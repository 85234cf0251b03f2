"""Stand-in for qdrant/qdrant (1.11, ``-unprivileged``) in tests: REST health routes, collections,
points (upsert and scroll only, no search) and collection snapshots (create, download, delete,
upload, recover; a snapshot here is a tar of the collection's directory, not qdrant's format).

From the outside like the real one: HTTP on 6333; /healthz, /livez and /readyz open; everything
else needs QDRANT__SERVICE__API_KEY as an ``api-key`` header or a bearer token; storage under
/qdrant/storage (a marker file appears there on first start). The image holds bash but no curl
or wget, so the renderer's ``bash -c 'exec 3<>/dev/tcp/...'`` probe is what works here too.
Knobs: STANDIN_START_DELAY, STANDIN_FAIL=never-healthy (/readyz 503) or exit.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tarfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common
import facts

F = facts.server_value
VERSION = str(F("qdrant version"))
OPEN_PATHS = set(F("qdrant open paths"))
PRIORITIES = set(F("qdrant snapshot priorities"))


class QdrantHandler(common.Handler):
    standin_name = "qdrant"

    def route(self, method: str, path: str) -> None:
        state = self.server.state
        if path == "/readyz" and state["fail"] == "never-healthy":
            return self.send_text(503, "some shards are not ready")
        if path in OPEN_PATHS and path != "/":  # "/" is open too, and answers the version below
            return self.send_text(200, "all shards are ready" if path == "/readyz" else "healthz check passed")
        key = state["api_key"]
        if (
            key
            and path not in OPEN_PATHS
            and key not in (self.headers.get(str(F("qdrant api key header"))), self.bearer())
        ):
            return self.send_text(401, "Must provide an API key or an Authorization bearer token")
        collections = os.path.join(state["storage"], "collections")
        parts = [p for p in path.split("/") if p]
        if parts == [] and method == "GET":
            return self.send_json(200, {"title": "qdrant - vector search engine", "version": VERSION})
        if parts == ["collections"] and method == "GET":
            names = sorted(os.listdir(collections)) if os.path.isdir(collections) else []
            return self.ok({"collections": [{"name": n} for n in names]})
        if len(parts) == 3 and parts[0] == "collections" and parts[2] == "exists" and method == "GET":
            return self.ok({"exists": os.path.isdir(os.path.join(collections, parts[1]))})
        if len(parts) == 2 and parts[0] == "collections" and method in ("PUT", "DELETE"):
            target = os.path.join(collections, parts[1])
            if method == "PUT":
                os.makedirs(target, exist_ok=True)
            elif os.path.isdir(target):
                shutil.rmtree(target)
            return self.ok(True)
        if len(parts) >= 3 and parts[0] == "collections":
            return self.collection_route(method, os.path.join(collections, parts[1]), parts[1], parts[2:])
        self.not_found(path)

    def not_found(self, path: str) -> None:
        self.send_json(404, {"status": {"error": f"Not found: {path}"}, "time": 0.0})

    def collection_route(self, method: str, directory: str, name: str, rest: list[str]) -> None:
        """Points and snapshots of one collection (routes: facts "qdrant upsert points" and after)."""
        route = (method, "/collections/{name}/" + "/".join(rest))
        if not os.path.isdir(directory) and route != F("qdrant snapshot recover"):
            return self.send_json(404, {"status": {"error": f"Collection `{name}` doesn't exist!"}, "time": 0.0})
        points_file = os.path.join(directory, "points.json")
        points = {}
        if os.path.exists(points_file):
            with open(points_file, encoding="utf-8") as f:
                points = json.load(f)
        snapshots = os.path.join(self.server.state["snapshots"], name)
        if route == F("qdrant upsert points"):
            for point in json.loads(self.body())["points"]:
                points[str(point["id"])] = point
            with open(points_file, "w", encoding="utf-8") as f:
                json.dump(points, f)
            return self.ok({"operation_id": 0, "status": "completed"})
        if route == F("qdrant scroll points"):
            return self.ok({"points": [points[k] for k in sorted(points)], "next_page_offset": None})
        if route == F("qdrant snapshot create"):
            snapshot = f"{name}-{time.strftime('%Y-%m-%d-%H-%M-%S')}-{os.urandom(4).hex()}.snapshot"
            os.makedirs(snapshots, exist_ok=True)
            with tarfile.open(os.path.join(snapshots, snapshot), "w") as tar:
                tar.add(directory, arcname=".")
            return self.ok({"name": snapshot, "size": os.path.getsize(os.path.join(snapshots, snapshot))})
        if route == F("qdrant snapshot recover"):
            request = json.loads(self.body())
            return self.recover(directory, urllib.parse.urlparse(request["location"]), request.get("priority"))
        if method == "POST" and rest == ["snapshots", "upload"]:
            return self.send_json(501, {"status": {"error": "the stand-in takes file:// recover only"}, "time": 0.0})
        if len(rest) == 2 and rest[0] == "snapshots" and method in ("GET", "DELETE"):
            target = os.path.join(snapshots, rest[1])
            if not os.path.isfile(target):
                return self.not_found(target)
            if method == "DELETE":
                os.remove(target)
                return self.ok(True)
            with open(target, "rb") as f:
                return self.send_raw(200, f.read(), "application/octet-stream")
        self.not_found("/".join(rest))

    def recover(self, directory: str, location: urllib.parse.ParseResult, priority: str | None) -> None:
        if location.scheme not in F("qdrant recover schemes") or (priority and priority not in PRIORITIES):
            return self.send_json(400, {"status": {"error": "bad location or priority"}, "time": 0.0})
        if location.scheme != "file" or not os.path.isfile(location.path):
            return self.send_json(400, {"status": {"error": f"Snapshot file {location.path!r} does not exist"}})
        with open(location.path, "rb") as f:
            data = f.read()
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(directory)  # a snapshot this stand-in wrote (python 3.11.2 has no extraction filter)
        self.ok(True)

    def ok(self, result: object) -> None:
        self.send_json(200, {"result": result, "status": "ok", "time": 0.0001})


def main() -> None:
    storage = os.environ.get("QDRANT__STORAGE__STORAGE_PATH", str(F("qdrant storage path")))
    port = int(os.environ.get("QDRANT__SERVICE__HTTP_PORT") or str(F("qdrant port")))
    common.exit_on_signals()
    fail = common.start_knobs("qdrant")
    os.makedirs(storage, exist_ok=True)  # fails like the real one when the volume is not writable
    marker = os.path.join(storage, "standin-storage.json")
    if not os.path.exists(marker):
        with open(marker, "w", encoding="utf-8") as f:
            json.dump({"created_at": time.time(), "uid": os.getuid()}, f)
    snapshots = os.environ.get("QDRANT__STORAGE__SNAPSHOTS_PATH", str(F("qdrant snapshots path")))
    state = {"api_key": os.environ.get(str(F("qdrant api key env"))) or None, "storage": storage, "fail": fail}
    state["snapshots"] = snapshots
    common.serve(QdrantHandler, os.environ.get("QDRANT__SERVICE__HOST", "0.0.0.0"), port, "qdrant", state=state)


if __name__ == "__main__":
    main()
