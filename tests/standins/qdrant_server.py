"""Stand-in for qdrant/qdrant (1.11, ``-unprivileged``) in tests: REST health routes and collection names.

From the outside like the real one: HTTP on 6333; /healthz, /livez and /readyz open; everything
else needs QDRANT__SERVICE__API_KEY as an ``api-key`` header or a bearer token; storage under
/qdrant/storage (a marker file appears there on first start). The image holds bash but no curl
or wget, so the renderer's ``bash -c 'exec 3<>/dev/tcp/...'`` probe is what works here too.
Knobs: STANDIN_START_DELAY, STANDIN_FAIL=never-healthy (/readyz 503) or exit.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common
import facts

F = facts.server_value
VERSION = str(F("qdrant version"))
OPEN_PATHS = set(F("qdrant open paths"))


class QdrantHandler(common.Handler):
    standin_name = "qdrant"

    def route(self, method: str, path: str) -> None:
        state = self.server.state
        if path == "/readyz" and state["fail"] == "never-healthy":
            return self.send_text(503, "some shards are not ready")
        if path in OPEN_PATHS:
            return self.send_text(200, "all shards are ready" if path == "/readyz" else "healthz check passed")
        key = state["api_key"]
        if key and key not in (self.headers.get(str(F("qdrant api key header"))), self.bearer()):
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
                os.rmdir(target)
            return self.ok(True)
        self.send_json(404, {"status": {"error": f"Not found: {path}"}, "time": 0.0})

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
    state = {"api_key": os.environ.get(str(F("qdrant api key env"))) or None, "storage": storage, "fail": fail}
    common.serve(QdrantHandler, os.environ.get("QDRANT__SERVICE__HOST", "0.0.0.0"), port, "qdrant", state=state)


if __name__ == "__main__":
    main()
